"""``python -m export build-engine`` and ``python -m export verify``: the TensorRT commands.

``build-engine`` is the standalone form for a Kubernetes init container: ONNX in, plan + sidecar out, with the
optimisation profiles read from the spec stored in the ONNX file, skipping the build when the cache already holds
an engine for this GPU product + TensorRT version + ONNX hash.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from export.errors import ExportError
from export.pipeline import DEFAULT_CACHE_DIR, DEFAULT_WORK_DIR, onnx_path_for


def build_engine_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export build-engine",
        description="Build a TensorRT engine (model.plan + model.plan.json sidecar) from an ONNX file written by "
                    "`python -m export`, on this machine's GPU. Skips the build when --cache-dir already holds an "
                    "engine for this GPU product, TensorRT version and ONNX sha256.")
    p.add_argument("--onnx", type=Path, required=True, help="ONNX file exported by `python -m export`")
    p.add_argument("--plan", type=Path, required=True, help="where to write the engine (sidecar: PLAN.json)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                   help="engine + timing cache folder, keyed by GPU product and TensorRT version "
                        "(default: %(default)s)")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="default: %(default)s")
    p.add_argument("--workspace-mib", type=int, default=4096, help="builder workspace limit (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run_build_engine(argv: list[str]) -> int:
    from export.tensorrt import BuildOptions, build_engine

    args = build_engine_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.onnx.is_file():
        raise ExportError(f"ONNX file {args.onnx} does not exist.")
    result = build_engine(args.onnx, options=BuildOptions(args.precision, args.workspace_mib << 20,
                                                          not args.no_progress),
                          cache_dir=args.cache_dir, plan_path=args.plan)
    s = result.sidecar
    print(f"{result.plan_path}: {s.model} {s.precision} for {s.gpu_name} (sm {s.compute_capability}), TensorRT "
          f"{s.tensorrt_version}{' (cached)' if result.cached else f', built in {s.build_seconds:.0f} s'}")
    return 0


def verify_parser() -> argparse.ArgumentParser:
    from export.spec import SPECS

    p = argparse.ArgumentParser(
        prog="python -m export verify",
        description="Accuracy gate: run the TensorRT engine and ONNX Runtime (FP32) on the same images and compare "
                    "(semantic: pixel agreement >= 99.5%; Mask R-CNN: matched boxes within 1 px, masks >= 99%).")
    p.add_argument("model", help=f"registered model: {', '.join(SPECS)}")
    p.add_argument("--onnx", type=Path, help="ONNX file (default: WORK_DIR/MODEL/model.onnx, exported if missing)")
    p.add_argument("--plan", type=Path, help="engine to check (default: build or reuse one from the cache)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: %(default)s")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="default: %(default)s")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="default: %(default)s")
    p.add_argument("--images", type=int, default=4, help="number of synthetic test images (default: %(default)s)")
    p.add_argument("--size", type=int, help="input size override when exporting (default: the spec's)")
    return p


def run_verify(argv: list[str]) -> int:
    args = verify_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    agreement = verify(args.model, onnx_path=args.onnx, plan_path=args.plan, work_dir=args.work_dir,
                       cache_dir=args.cache_dir, precision=args.precision, images=args.images, size=args.size)
    print(f"{args.model}: TensorRT {args.precision} vs ONNX Runtime FP32: {agreement.summary}")
    if not agreement.passed:
        raise ExportError(f"`{args.model}` failed the TensorRT accuracy gate: {agreement.summary}")
    return 0


def verify(model: str, *, onnx_path: Path | None = None, plan_path: Path | None = None,
           work_dir: Path = DEFAULT_WORK_DIR, cache_dir: Path = DEFAULT_CACHE_DIR, precision: str = "fp16",
           images: int = 4, size: int | None = None):
    """Compare a TensorRT engine with ONNX Runtime FP32 on ``images`` synthetic images: the first failing image's
    agreement, else the least agreeing one."""
    from export.compare import FP16_GATE, PARITY, compare_outputs
    from export.onnx_export import example_input
    from export.parity import ort_session, run_onnxruntime
    from export.spec import get_spec
    from export.tensorrt import BuildOptions, build_engine, check_plan_for_gpu, run_engine, spec_from_onnx

    if onnx_path is None:
        onnx_path = onnx_path_for(work_dir, model)
        if not onnx_path.is_file():
            from export.models import build_served_module
            from export.onnx_export import export_onnx

            spec = get_spec(model).with_options(size=size)
            export_onnx(build_served_module(spec), spec, onnx_path)
    spec = spec_from_onnx(onnx_path)
    if spec.name != model:
        raise ExportError(f"{onnx_path} holds `{spec.name}`, not `{model}`.")
    if plan_path is None:
        plan_path = build_engine(onnx_path, spec=spec, options=BuildOptions(precision), cache_dir=cache_dir).plan_path
    check_plan_for_gpu(plan_path)
    limits = FP16_GATE if precision == "fp16" else PARITY
    session = ort_session(onnx_path)
    batches = [example_input(spec, 1, seed=100 + seed).numpy() for seed in range(images)]
    results = []
    for batch, candidate in zip(batches, run_engine(plan_path, spec, batches)):
        reference = run_onnxruntime(onnx_path, spec, batch, session=session)
        result = compare_outputs(spec.task, reference, candidate, max_detections=spec.max_detections, limits=limits)
        if not result.passed:
            return result
        results.append(result)
    # All passed: report the least agreeing image.
    return min(results, key=lambda r: r.pixel_agreement if r.pixel_agreement is not None else r.mask_agreement)
