"""u2netp on the quokka photo and its variants: IoU against the annotated polygon, three ways side by side.

    python bench/u2netp_quokka.py [--url localhost:8001]

- ``rembg``: the raw ONNX file with rembg's own pre-processing (stretch to 320x320 with LANCZOS, divide by the
  image's max, ImageNet mean/std, min-max the first output, LANCZOS back to the original size, > 127), as in
  danielgatis/rembg 2.0.x ``rembg/sessions/u2netp.py`` (``U2netpSession.predict``) and ``rembg/sessions/base.py``
  (``BaseSession.normalize``);
- ``wrapped``: our exported graph in-process, with the client's own letterbox and un-letterbox (what Triton runs);
- ``triton``: the client against a running Triton serving `u2netp` (with --url).

Needs `scripts/fetch-tools.sh u2netp quokka` and the export extra (onnxruntime). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from quokka import VARIANTS, iou, make_variants, missing  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def rembg_mask(session, rgb: np.ndarray) -> np.ndarray:
    """rembg's u2netp session: stretch, /max, ImageNet, first output, min-max, back to size, binarised."""
    image = Image.fromarray(rgb)
    x = np.asarray(image.resize((320, 320), Image.Resampling.LANCZOS), np.float32)
    x = (x / max(float(x.max()), 1e-6) - MEAN) / STD
    pred = session.run(None, {session.get_inputs()[0].name: x.transpose(2, 0, 1)[None].astype(np.float32)})[0]
    p = pred[0, 0]
    p = (p - p.min()) / (p.max() - p.min())
    back = Image.fromarray((p * 255).astype(np.uint8)).resize(image.size, Image.Resampling.LANCZOS)
    return np.asarray(back) > 127


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="gRPC URL of a Triton serving u2netp (adds the `triton` column)")
    args = p.parse_args(argv)
    reason = missing()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    from client.postprocess import unletterbox_mask
    from client.preprocess import letterbox, load_image
    from export.importer.builtin import IMPORTED, fetched_file
    from export.parity import ort_session
    from export.spec import get_spec

    recipe = IMPORTED["u2netp"]
    raw = ort_session(fetched_file(recipe.asset, recipe.member))
    spec = get_spec("u2netp")
    with tempfile.TemporaryDirectory() as tmp:
        from export.config import ServingOptions
        from export.pipeline import export_model

        started = time.perf_counter()
        result = export_model(spec, ServingOptions.for_target("local"), Path(tmp) / "repo", work_dir=Path(tmp))
        print(f"export (import path): {time.perf_counter() - started:.1f} s "
              f"({result.times})")
        wrapped = ort_session(result.onnx_path)
        variants = make_variants(Path(tmp) / "variants")
        seg = None
        if args.url:
            from client import Segmenter

            seg = Segmenter(args.url, "u2netp")
        print(f"{'variant':14} {'size':>10} {'rembg':>7} {'wrapped':>8}" + (f" {'triton':>7}" if seg else ""))
        for name in VARIANTS:
            item = variants[name]
            rgb = load_image(item.path)
            canvas, box = letterbox(rgb, spec.height, spec.width)
            ours = unletterbox_mask(wrapped.run(["MASK"], {"IMAGE": canvas[None]})[0][0], box) == 1
            row = f"{name:14} {rgb.shape[1]:>5}x{rgb.shape[0]:<4} {iou(rembg_mask(raw, rgb), item.truth):7.4f} " \
                  f"{iou(ours, item.truth):8.4f}"
            if seg:
                row += f" {iou(seg.segment(item.path).mask == 1, item.truth):7.4f}"
            print(row)
        if seg:
            seg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
