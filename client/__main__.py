"""``python -m client``: segment images with a served segserve model and write overlay pictures.

    python -m client segment --model deeplabv3 street.jpg park.png --out overlays/
    python -m client models --url localhost:8001
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from client.api import DEFAULT_URLS, PROTOCOLS, DetectionResult, Segmenter, served_models, _connect
from client.errors import ClientError


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="server address host:port (default: localhost:8001 for grpc, :8000 for http)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="grpc", help="wire protocol (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server to be ready")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m client", description="Thin Triton client for segserve models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    seg = sub.add_parser("segment", help="segment images and write overlays",
                         description="Segment images (semantic or instance, as the model is) and write a coloured "
                                     "overlay PNG per image.")
    seg.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (any format PIL reads)")
    seg.add_argument("--model", default="deeplabv3_mobilenet", help="served model name (default: %(default)s)")
    seg.add_argument("--out", type=Path, default=Path("out"), help="folder for overlay PNGs (default: %(default)s)")
    seg.add_argument("--mask-threshold", type=float, default=0.5, help="instance mask probability threshold")
    _connection_args(seg)
    models = sub.add_parser("models", help="list the models the server has ready",
                            description="List the models the server reports READY.")
    _connection_args(models)
    return p


def describe(result) -> str:
    if isinstance(result, DetectionResult):
        if not len(result):
            return "no instances"
        counts: dict[str, int] = {}
        for name in result.names:
            counts[name] = counts.get(name, 0) + 1
        return f"{len(result)} instances: " + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))
    return ", ".join(f"{name} {frac:.1%}" for _, name, frac in result.classes[:5])


def run_segment(args: argparse.Namespace) -> int:
    from client.overlay import overlay_instances, overlay_semantic
    from client.preprocess import load_image

    args.out.mkdir(parents=True, exist_ok=True)
    with Segmenter(args.url, args.model, protocol=args.protocol, ready_timeout_s=args.timeout,
                   mask_threshold=args.mask_threshold) as seg:
        for path in args.images:
            rgb = load_image(path)
            result = seg(rgb)
            picture = overlay_instances(rgb, result) if isinstance(result, DetectionResult) else \
                overlay_semantic(rgb, result)
            target = args.out / f"{path.stem}.{seg.info.name}.png"
            picture.save(target)
            h, w = rgb.shape[:2]
            print(f"{path.name}: {w}x{h} {seg.info.name} {result.latency_ms:.1f} ms  {describe(result)}  -> {target}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    url = args.url or DEFAULT_URLS[args.protocol]
    client = _connect(url, args.protocol, args.timeout)
    for name in sorted(served_models(client, args.protocol)):
        print(name)
    client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run_segment(args) if args.command == "segment" else run_models(args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
