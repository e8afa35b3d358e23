"""``python -m export build-engine`` and ``python -m export verify``: the TensorRT commands (a thin layer).

``build-engine`` is what the chart's engine-build init container runs in the builder image (docker/engine-builder):
ONNX in, complete served ``tensorrt_plan`` model directories out, with everything read from the spec stored in each
ONNX file; the engine cache skips builds it already holds for this GPU, TensorRT and build options.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from export.cli_options import setup_logging
from export.errors import ExportError
from export.layout import DEFAULT_CACHE_DIR, DEFAULT_WORK_DIR
from export.releases import BUILDER_RELEASE_ENV


def build_engine_parser() -> argparse.ArgumentParser:
    from export.tensorrt.build import DEFAULT_LOCK_TIMEOUT_S

    p = argparse.ArgumentParser(
        prog="python -m export build-engine",
        description="Build TensorRT engines on this machine's GPU and write complete served model directories "
                    "(config.pbtxt with platform tensorrt_plan, labels.txt, 1/model.plan, model.plan.json) into "
                    "--repository. Sources: every <model>/1/model.onnx of --source-repository (a repository "
                    "exported with --target onnxruntime) and/or --onnx files. Engines come from --cache-dir when it "
                    "holds one for this GPU, TensorRT and build options.")
    p.add_argument("--source-repository", type=Path, help="repository with <model>/1/model.onnx files")
    p.add_argument("--onnx", type=Path, action="append", default=[],
                   help="an ONNX file exported by `python -m export` (repeatable)")
    p.add_argument("--repository", type=Path, required=True, help="model repository to write (what Triton serves)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR,
                   help="engine + timing cache, shareable between pods (default: %(default)s)")
    p.add_argument("--release", metavar="YY.MM", default=os.environ.get(BUILDER_RELEASE_ENV) or None,
                   help="NGC release of the Triton image that serves the engines; this TensorRT must be that "
                        f"release's (default: ${BUILDER_RELEASE_ENV}, set by the builder image, else the version "
                        "table's default release)")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16",
                   help="precision the ONNX graphs must have been exported in; the engine computes in the graph's "
                        "types (default: %(default)s)")
    p.add_argument("--workspace-mib", type=int, default=4096, help="builder workspace limit (default: %(default)s)")
    p.add_argument("--lock-timeout", type=float, default=DEFAULT_LOCK_TIMEOUT_S,
                   help="seconds to wait for another pod's build of the same engine (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run_build_engine(argv: list[str], builder=None, tensorrt_version: str | None = None, gpu=None) -> int:
    """The command; ``builder``/``tensorrt_version``/``gpu`` replace the real TensorRT build in tests."""
    from export.layout import repository_onnx_files
    from export.tensorrt.build import BuildOptions, installed_tensorrt
    from export.tensorrt.served import build_served_models, plan_sources

    args = build_engine_parser().parse_args(argv)
    setup_logging(verbose=False)
    if builder is None:
        tensorrt_version = installed_tensorrt()  # exit 1 with one line before anything else when it is missing
    files = list(args.onnx)
    if args.source_repository is not None:
        if not args.source_repository.is_dir():
            raise ExportError(f"Source repository {args.source_repository} does not exist.")
        if args.source_repository.resolve() == args.repository.resolve():
            raise ExportError(f"--repository {args.repository} is the source repository: write the served models "
                              "to another folder (each model folder is replaced whole).")
        files += repository_onnx_files(args.source_repository)
    elif not files:
        raise ExportError("Nothing to build: pass --source-repository SRC and/or --onnx FILE.")
    for path in files:
        if not path.is_file():
            raise ExportError(f"ONNX file {path} does not exist.")
    sources = plan_sources(files, args.precision)
    options = BuildOptions(args.workspace_mib << 20, not args.no_progress, args.release, args.lock_timeout)
    for model_dir, result in build_served_models(sources, args.repository, cache_dir=args.cache_dir,
                                                 options=options, builder=builder,
                                                 tensorrt_version=tensorrt_version, gpu=gpu):
        s = result.sidecar
        print(f"{model_dir}: {s.model} {s.precision} for {s.gpu_name} (sm {s.compute_capability}"
              f"{', MIG ' + s.mig_profile if s.mig_profile else ''}), TensorRT {s.tensorrt_version}"
              f"{' (cached)' if result.cached else f', built in {s.build_seconds:.0f} s'}")
    return 0


def verify_parser() -> argparse.ArgumentParser:
    from export.spec import SPECS

    p = argparse.ArgumentParser(
        prog="python -m export verify",
        description="Accuracy gate on this GPU: run the TensorRT engine and ONNX Runtime (FP32 graph) on the same "
                    "images and compare (semantic: pixel agreement >= 99.5%; Mask R-CNN: >= 95% of detections "
                    "matched at IoU > 0.9, boxes within 1 px).")
    p.add_argument("model", help=f"registered model: {', '.join(SPECS)}")
    p.add_argument("--onnx", type=Path, help="ONNX file the engine is built from (default: WORK_DIR/MODEL/model.onnx, "
                   "exported in --precision if missing)")
    p.add_argument("--reference-onnx", type=Path, help="FP32 ONNX file to compare with (default: the same model "
                   "exported in FP32 into WORK_DIR/MODEL-fp32/)")
    p.add_argument("--plan", type=Path, help="engine to check (default: build or reuse one from the cache)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="default: %(default)s")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="default: %(default)s")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16", help="default: %(default)s")
    p.add_argument("--release", metavar="YY.MM", help="NGC release the engine is for (default: the table's default)")
    p.add_argument("--images", type=int, default=4, help="number of test images (default: %(default)s)")
    p.add_argument("--size", type=int, help="input size override when exporting (default: the spec's)")
    return p


def run_verify(argv: list[str]) -> int:
    from export.tensorrt.verify import verify

    args = verify_parser().parse_args(argv)
    setup_logging(verbose=False)
    agreement = verify(args.model, onnx_path=args.onnx, reference_onnx=args.reference_onnx, plan_path=args.plan,
                       work_dir=args.work_dir, cache_dir=args.cache_dir, precision=args.precision,
                       release=args.release, images=args.images, size=args.size)
    print(f"{args.model}: TensorRT {args.precision} vs ONNX Runtime FP32: {agreement.summary}")
    if not agreement.passed:
        raise ExportError(f"`{args.model}` failed the TensorRT accuracy gate: {agreement.summary}")
    return 0

