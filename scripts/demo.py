"""`make demo`: export the demo models, serve them on a real local Triton (CPU), segment sample images.

Pretrained weights are tried first (--weights DEFAULT); where the model hubs are unreachable the demo says so and
falls back to random weights, whose masks are meaningless but exercise every stage for real. `u2netp` is a real
trained network (rembg's U2-Net-p, imported from its ONNX file): on the quokka photo (imgaug's, fetched by `make
tools`) its mask is real, and the table shows its IoU against the photo's annotated outline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from client import DetectionResult, Segmenter  # noqa: E402
from client.__main__ import describe  # noqa: E402
from client.overlay import overlay_instances, overlay_semantic  # noqa: E402
from export.config import ServingOptions  # noqa: E402
from export.errors import ExportError, WeightsUnavailableError  # noqa: E402
from export.importer.builtin import IMPORTED  # noqa: E402
from export.samples import synthetic_image  # noqa: E402
from export.spec import DEMO_MODELS, get_spec  # noqa: E402
from serve.server import ServerConfig, ServeError, TritonServer  # noqa: E402

SAMPLES = {"scene-wide.png": (480, 720, 7), "scene-tall.png": (640, 400, 21), "scene-square.png": (512, 512, 4)}


REAL_PHOTO = "quokka.jpg"


def real_photo(samples: Path):
    """Copy the fetched quokka photo into ``samples`` and return its ground-truth mask (None when not fetched)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from quokka import PHOTO, missing, polygon, rasterise

    reason = missing()
    if reason:
        print(f"  (no real photo: {reason})")
        return None
    (samples / REAL_PHOTO).write_bytes(PHOTO.read_bytes())
    width, height = Image.open(PHOTO).size
    return rasterise(polygon(), height, width)


def export_all(repository: Path, work: Path, models: tuple[str, ...]) -> dict[str, str]:
    from export.pipeline import export_model

    weights_used = {}
    for name in models:
        spec = get_spec(name)
        if (repository / name / "config.pbtxt").exists():
            print(f"  {name}: already in {repository} (make clean to re-export)")
            weights_used[name] = "existing"
            continue
        try:
            result = export_model(spec, ServingOptions.for_target("local"), repository, weights="DEFAULT",
                                  work_dir=work)
            weights_used[name] = "trained (ONNX)" if name in IMPORTED else "pretrained"
        except WeightsUnavailableError as exc:
            print(f"  !!! {exc}\n  !!! falling back to RANDOM weights for {name}: its masks will be meaningless")
            result = export_model(spec, ServingOptions.for_target("local"), repository, weights="none",
                                  work_dir=work)
            weights_used[name] = "random"
        print(f"  {name}: ONNX {result.onnx_bytes / 1e6:.1f} MB; {result.times}\n    parity: {result.parity}")
    return weights_used


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="model repository folder")
    p.add_argument("--out", type=Path, default=ROOT / "demo-out", help="folder for sample images and overlays")
    p.add_argument("--models", nargs="+", default=list(DEMO_MODELS), help="models to export and run")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port of the local Triton")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP port of the local Triton")
    p.add_argument("--metrics-port", type=int, default=8002, help="metrics port of the local Triton")
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        print(f"1/3 export {', '.join(args.models)} -> {args.repository} (target local)")
        weights = export_all(args.repository, ROOT / "build", tuple(args.models))

        samples = args.out / "samples"
        samples.mkdir(parents=True, exist_ok=True)

        for filename, (h, w, seed) in SAMPLES.items():
            Image.fromarray(synthetic_image(h, w, seed=seed)).save(samples / filename)
        images = list(SAMPLES)
        truth = real_photo(samples)
        if truth is not None:
            images.insert(0, REAL_PHOTO)

        print("2/3 start tritonserver (CPU, python backend)")
        config = ServerConfig(args.repository, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port)
        rows = []
        with TritonServer(config, log_path=args.out / "tritonserver.log") as server:
            server.wait_ready(600)
            print(f"    ready: gRPC {server.grpc_url}, HTTP {server.http_url}")
            print(f"3/3 segment {len(images)} sample images with each model -> {args.out}")
            for name in args.models:
                with Segmenter(server.grpc_url, name) as seg:
                    seg(samples / next(iter(SAMPLES)))  # warm-up (first call initialises ONNX Runtime)
                    for filename in images:
                        path = samples / filename
                        from client.preprocess import load_image

                        rgb = load_image(path)
                        result = seg(rgb)
                        picture = overlay_instances(rgb, result) if isinstance(result, DetectionResult) \
                            else overlay_semantic(rgb, result)
                        target = args.out / f"{path.stem}.{name}.png"
                        picture.save(target)
                        sent, received = seg.last_wire_bytes
                        score = ""
                        if filename == REAL_PHOTO and not isinstance(result, DetectionResult) \
                                and "foreground" in result.class_names:
                            from quokka import iou

                            score = f"{iou(result.mask == result.class_names.index('foreground'), truth):.3f}"
                        rows.append((name, weights[name], filename, f"{rgb.shape[1]}x{rgb.shape[0]}",
                                     f"{result.latency_ms:.0f}", f"{sent / 1e3:.0f}/{received / 1e3:.0f}",
                                     describe(result)[:48], score, target.name))
        print()
        header = ("model", "weights", "image", "size", "ms", "KB in/out", "found", "IoU", "overlay")
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
        for row in (header, tuple("-" * w for w in widths), *rows):
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; overlays in {args.out}")
        return 0
    except (ExportError, ServeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
