"""``python -m client``: segment images with a served segserve model and write overlay pictures.

    python -m client segment --model deeplabv3 street.jpg park.png --out overlays/ --concurrency 4
    python -m client segment --url triton.example.com:443 --tls --header 'Authorization: Bearer TOKEN' a.jpg
    python -m client models --url localhost:8001
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from client.errors import ClientError
from client.transport import PROTOCOLS, TLS, Connection, Retry


def header(text: str) -> tuple[str, str]:
    """An argparse type: 'Name: value' -> (name, value)."""
    key, sep, value = text.partition(":")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"bad header {text!r}: expected 'Name: value'")
    return key.strip(), value.strip()


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    return parse


def _connection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="server address host:port (default: localhost:8001 for grpc, :8000 for http)")
    p.add_argument("--protocol", choices=PROTOCOLS, default="grpc", help="wire protocol (default: %(default)s)")
    p.add_argument("--timeout", type=_positive(float), default=30.0,
                   help="deadline in seconds for each server call, and for the server to become ready "
                        "(default: %(default)s)")
    p.add_argument("--retries", type=_positive(int), default=Retry.attempts,
                   help="attempts per call while the server is unavailable, with exponential backoff "
                        "(default: %(default)s)")
    p.add_argument("--header", action="append", type=header, default=[], metavar="'NAME: VALUE'",
                   help="header sent with every call (repeatable), e.g. 'Authorization: Bearer TOKEN'")
    tls = p.add_argument_group("TLS (gRPC SSL or HTTPS)")
    tls.add_argument("--tls", action="store_true", help="encrypt the connection (implied by the options below)")
    tls.add_argument("--ca-cert", type=Path, help="PEM root certificates to trust (default: the system's)")
    tls.add_argument("--client-cert", type=Path, help="PEM client certificate (mutual TLS)")
    tls.add_argument("--client-key", type=Path, help="PEM client private key (mutual TLS)")
    tls.add_argument("--tls-server-name", help="name the server certificate must carry, when not the URL's host")


def connection_options(args: argparse.Namespace) -> dict:
    tls = None
    if args.tls or args.ca_cert or args.client_cert or args.client_key or args.tls_server_name:
        tls = TLS(args.ca_cert, args.client_cert, args.client_key, args.tls_server_name)
    return {"protocol": args.protocol, "timeout_s": args.timeout, "tls": tls, "headers": dict(args.header),
            "retry": Retry(attempts=args.retries)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m client", description="Thin Triton client for segserve models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    seg = sub.add_parser("segment", help="segment images and write overlays",
                         description="Segment images (semantic or instance, as the model is) and write a coloured "
                                     "overlay PNG per image. A bad image is reported and the rest go on; the exit "
                                     "code is 1 if any failed.")
    seg.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (any format PIL reads)")
    seg.add_argument("--model", default="deeplabv3_mobilenet", help="served model name (default: %(default)s)")
    seg.add_argument("--out", type=Path, default=Path("out"), help="folder for overlay PNGs (default: %(default)s)")
    seg.add_argument("--mask-threshold", type=float, default=0.5, help="instance mask probability threshold")
    seg.add_argument("--concurrency", type=_positive(int), default=4,
                     help="images in flight at once (default: %(default)s)")
    seg.add_argument("--max-pixels", type=_positive(int), default=None,
                     help="refuse images with more pixels than this, checked before decoding (default: PIL's "
                          "decompression-bomb limit, about 89 million)")
    _connection_args(seg)
    models = sub.add_parser("models", help="list the models the server has ready",
                            description="List the models the server reports READY.")
    _connection_args(models)
    return p


def describe(result) -> str:
    from client.results import DetectionResult

    if isinstance(result, DetectionResult):
        if not len(result):
            return "no instances"
        counts: dict[str, int] = {}
        for name in result.names:
            counts[name] = counts.get(name, 0) + 1
        return f"{len(result)} instances: " + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))
    return ", ".join(f"{name} {frac:.1%}" for _, name, frac in result.classes[:5])


def output_paths(images: list[Path], out: Path, model: str) -> list[Path]:
    """``<stem>.<model>.png`` per image; inputs whose stems collide (a.jpg, a.png) keep their suffix
    (``a.jpg.<model>.png``), and any name still shared gets ``-2``, ``-3`` ... so no overlay overwrites another."""
    stems: dict[str, int] = {}
    for path in images:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    names = [path.stem if stems[path.stem] == 1 else path.name for path in images]
    seen: dict[str, int] = {}
    out_paths = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique = name if seen[name] == 1 else f"{name}-{seen[name]}"
        out_paths.append(out / f"{unique}.{model}.png")
    return out_paths


def run_segment(args: argparse.Namespace) -> int:
    from client.api import Segmenter, ordered_map
    from client.overlay import overlay_instances, overlay_semantic
    from client.preprocess import DEFAULT_MAX_PIXELS, load_image_frames
    from client.results import DetectionResult

    if args.out.exists() and not args.out.is_dir():
        raise ClientError(f"--out `{args.out}` is a file: give a folder for the overlay PNGs.")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClientError(f"Cannot create the output folder `{args.out}`: {exc.strerror}.") from None
    max_pixels = args.max_pixels or DEFAULT_MAX_PIXELS
    with Segmenter(args.url, args.model, ready_timeout_s=args.timeout, mask_threshold=args.mask_threshold,
                   max_pixels=max_pixels, **connection_options(args)) as seg:
        def one(item: tuple[Path, Path]) -> tuple[str, int]:
            path, target = item
            rgb, frames = load_image_frames(path, max_pixels)
            result = seg(rgb)
            picture = overlay_instances(rgb, result) if isinstance(result, DetectionResult) else \
                overlay_semantic(rgb, result)
            try:
                picture.save(target)
            except OSError as exc:
                raise ClientError(f"Cannot write `{target}`: {exc.strerror or exc}.") from None
            h, w = rgb.shape[:2]
            note = f" (first of {frames} frames)" if frames > 1 else ""
            return (f"{path.name}: {w}x{h}{note} {seg.info.name} {result.latency_ms:.1f} ms  {describe(result)}  "
                    f"-> {target}"), frames

        failed = 0
        items = list(zip(args.images, output_paths(args.images, args.out, seg.info.name)))
        for (path, _), done in zip(items, ordered_map(one, items, args.concurrency, return_exceptions=True)):
            if isinstance(done, ClientError):
                failed += 1
                print(f"error: {done}", file=sys.stderr, flush=True)
                continue
            line, frames = done
            print(line, flush=True)
            if frames > 1:
                print(f"note: {path} has several frames; only the first was segmented", file=sys.stderr)
    if failed and len(args.images) > 1:
        print(f"error: {failed} of {len(args.images)} images failed", file=sys.stderr)
    return 1 if failed else 0


def run_models(args: argparse.Namespace) -> int:
    connection = Connection(args.url, **connection_options(args))
    try:
        connection.wait_ready(args.timeout)
        for name in sorted(connection.served_models()):
            print(name)
    finally:
        connection.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from PIL import Image

    # The pixel budget (--max-pixels) is checked right after; PIL's own warning would only repeat it.
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    try:
        return run_segment(args) if args.command == "segment" else run_models(args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
