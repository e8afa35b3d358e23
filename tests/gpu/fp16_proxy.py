"""FP16 evidence without TensorRT: each served module (uint8 in -> mask out) in PyTorch FP16 vs FP32.

    python tests/gpu/fp16_proxy.py                      # CUDA, every model at its spec size
    python tests/gpu/fp16_proxy.py --device cpu --size 128 --models deeplabv3_mobilenet   # smoke run

Agreement is measured with the same comparison as the TensorRT gate (semantic pixel agreement; Mask R-CNN matched
by IoU, box error, binarised mask agreement). The normalisation stays in FP32 (as the TensorRT build pins it); the
network body runs in FP16. A proxy only: TensorRT picks its own FP16 kernels and fusions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def half_body(module, spec):
    """FP16 copy of a served module with the uint8 -> float normalisation kept in FP32."""
    import copy

    import torch

    half = copy.deepcopy(module)
    if spec.task == "semantic":
        half.net.half()
        original = half.net.forward

        def forward(x, _orig=original):
            out = _orig(x.half())
            return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()

        half.net.forward = forward
    else:
        half.backbone.half()
        half.rpn.half()
        half.roi_heads.half()
        original = half.backbone.forward

        def forward(x, _orig=original):
            return {k: v for k, v in _orig(x.half()).items()}

        half.backbone.forward = forward
    return half.eval()


def main(argv=None) -> int:
    import numpy as np
    import torch

    from export.compare import FP16_GATE, compare_outputs
    from export.models import MODELS, build_served_module
    from export.onnx_export import example_input
    from export.spec import get_spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=sorted(MODELS), help="models to measure")
    p.add_argument("--device", default="cuda", help="torch device (default: %(default)s)")
    p.add_argument("--size", type=int, help="input size override (default: each spec's)")
    p.add_argument("--images", type=int, default=4, help="synthetic images per model")
    p.add_argument("--weights", default="none", help="DEFAULT, none or a checkpoint path")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: CUDA is not available; pass --device cpu for a (slow) smoke run", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    report = {}
    for name in args.models:
        spec = get_spec(name).with_options(size=args.size)
        module = build_served_module(spec, args.weights).to(args.device)
        half = half_body(module, spec)
        worst, seconds = None, {"fp32": 0.0, "fp16": 0.0}
        for seed in range(args.images):
            x = example_input(spec, 1, seed=200 + seed).to(args.device)
            outs = {}
            for label, m in (("fp32", module), ("fp16", half)):
                started = time.perf_counter()
                with torch.inference_mode():
                    out = m(x)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                seconds[label] += time.perf_counter() - started
                out = out if isinstance(out, tuple) else (out,)
                outs[label] = {n: t.float().cpu().numpy() if t.is_floating_point() else t.cpu().numpy()
                               for n, t in zip(spec.output_names, out)}
            result = compare_outputs(spec.task, outs["fp32"], outs["fp16"], max_detections=spec.max_detections,
                                     limits=FP16_GATE)
            if worst is None or (result.pixel_agreement or result.mask_agreement) < \
                    (worst.pixel_agreement or worst.mask_agreement) or not result.passed:
                worst = result
        report[name] = {"passed": worst.passed, "summary": worst.summary, "size": spec.height,
                        "ms_fp32": 1e3 * seconds["fp32"] / args.images, "ms_fp16": 1e3 * seconds["fp16"] / args.images}
        print(f"{name:20} {'PASS' if worst.passed else 'FAIL'}  {worst.summary}  "
              f"(fp32 {report[name]['ms_fp32']:.1f} ms, fp16 {report[name]['ms_fp16']:.1f} ms per image)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if all(r["passed"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
