"""``python -m export``: PyTorch models -> ONNX / TensorRT -> a Triton model repository.

    python -m export MODEL [MODEL ...] --target {local,onnxruntime,tensorrt} --output model_repository
    python -m export list
    python -m export import MODEL.onnx --name NAME [--size H W] [--classes FILE] ...
    python -m export build-engine --source-repository SRC | --onnx F ... --repository DST [--cache-dir D]
    python -m export verify MODEL
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from export.cli_options import (add_release_argument, add_serving_arguments, check_engine_target, check_folders,
                                serving_options, setup_logging)
from export.errors import ExportError
from export.layout import DEFAULT_WORK_DIR
from export.spec import SPECS, get_spec


def _spec_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model options (override the registered spec)")
    g.add_argument("--size", type=int, help="square input size in pixels (multiple of 32); default: the spec's")
    g.add_argument("--num-classes", type=int, help="unet only: number of classes (default 21, VOC)")
    g.add_argument("--probs", action="store_true", help="semantic models: also output PROBS (float16 softmax)")
    g.add_argument("--max-detections", type=int, help="maskrcnn: detections per image D (default 100)")
    g.add_argument("--score-threshold", type=float, help="maskrcnn: minimum detection score (default 0.05)")
    g.add_argument("--max-batch-size", type=int, help="largest batch Triton may send (default: the spec's)")


SPEC_OPTIONS = ("size", "num_classes", "probs", "max_detections", "score_threshold", "max_batch_size")


def _applies(option: str, spec) -> bool:
    """Whether a spec option is meant for ``spec`` when several models are exported at once."""
    if option == "num_classes":
        return spec.name == "unet"
    if option == "probs":
        return spec.task == "semantic"
    if option in ("max_detections", "score_threshold"):
        return spec.task == "instance"
    return True


def _resolve_specs(names: list[str], args: argparse.Namespace):
    """Specs with the command line's overrides applied. With several models each option goes to the models it is
    meant for; an option meant for none of them (or for the one model named) is an error from ``with_options``."""
    specs = [get_spec(name) for name in names]
    # `is not None`: 0 and 0.0 are values to range-check, not "not given" (only --probs is a plain switch).
    given = {k: getattr(args, k) for k in SPEC_OPTIONS
             if getattr(args, k) is not None and not (k == "probs" and getattr(args, k) is False)}
    if len(specs) == 1:
        return [specs[0].with_options(**given)]
    for option, value in given.items():
        if not any(_applies(option, spec) for spec in specs):
            specs[0].with_options(**{option: value})  # raises the error that names the option and the model
    return [spec.with_options(**{k: v for k, v in given.items() if _applies(k, spec)}) for spec in specs]


def _check_paths(args: argparse.Namespace) -> None:
    """Fail in the first second, not after minutes of export: a missing checkpoint, folders that are files."""
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise ExportError(f"Checkpoint `{args.checkpoint}` does not exist. Pass a state-dict file saved with "
                          "torch.save.")
    check_folders(args)


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export segmentation models to ONNX (and TensorRT) and write them into a Triton model "
                    "repository with generated config.pbtxt files.",
        epilog="Other commands: `python -m export list` (registered models), `python -m export import --help` (your "
               "own ONNX segmentation network), `python -m export build-engine "
               "--help` (standalone TensorRT build, e.g. in a Kubernetes init container), `python -m export "
               "verify --help` (TensorRT vs ONNX Runtime accuracy gate).",
    )
    p.add_argument("models", nargs="+", metavar="MODEL", help=f"registered model(s): {', '.join(SPECS)}")
    add_serving_arguments(p, target_help="local: python backend + ONNX Runtime (the pip tritonserver here); "
                          "onnxruntime: Triton's ONNX Runtime backend; tensorrt: a prebuilt FP16 engine "
                          "(default: %(default)s)")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--weights", default="none", choices=("DEFAULT", "none"),
                   help="DEFAULT: the library's pretrained weights (needs the model hubs); none: random init "
                        "(default: %(default)s)")
    w.add_argument("--checkpoint", type=Path, help="a state-dict file to load instead")
    p.add_argument("--precision", choices=("fp16", "fp32"),
                   help="precision of the ONNX graph (and so of a TensorRT engine built from it): fp16 is mixed "
                        "precision, FP32 where numerics need it, gated against FP32 PyTorch at export (default: fp16 "
                        "for GPU targets, fp32 on CPU)")
    add_release_argument(p)
    p.add_argument("--plan", type=Path, help="tensorrt target: assemble from this prebuilt engine (its sidecar must "
                   "match the target GPU) instead of building one")
    p.add_argument("--target-gpu", metavar="NAME:CC", help="tensorrt target with --plan: the GPU the repository is for, "
                   "e.g. 'NVIDIA H100 80GB HBM3:9.0' (default: this machine's GPU)")
    p.add_argument("--cache-dir", type=Path, help="TensorRT engine and timing cache folder (default: WORK_DIR/engines)")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="where ONNX files go (default: %(default)s)")
    p.add_argument("--skip-parity", action="store_true", help="do not run the ONNX Runtime vs PyTorch check")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    _spec_options(p)
    return p


def run_export(argv: list[str]) -> int:
    from export.pipeline import export_model

    args = export_parser().parse_args(argv)
    setup_logging(args.verbose)
    options = serving_options(args)
    _check_paths(args)
    specs = _resolve_specs(args.models, args)  # validate every name and option before any work
    weights = str(args.checkpoint) if args.checkpoint else args.weights
    target_gpu = None
    if args.target_gpu:
        from export.tensorrt.gpu import parse_target_gpu

        target_gpu = parse_target_gpu(args.target_gpu)
    if (args.plan or target_gpu) and args.target != "tensorrt":
        raise ExportError("--plan and --target-gpu apply to --target tensorrt only.")
    if args.plan and len(specs) != 1:
        raise ExportError("--plan names one engine: export one model with it.")
    check_engine_target(args)
    for spec in specs:
        result = export_model(spec, options, args.output, weights=weights, work_dir=args.work_dir,
                              parity=not args.skip_parity, progress=not args.no_progress,
                              precision=args.precision, cache_dir=args.cache_dir, plan=args.plan,
                              target_gpu=target_gpu, release=args.release)
        print(f"{spec.name}: {result.model_dir} ({options.target}), ONNX {result.onnx_bytes / 1e6:.1f} MB; "
              f"parity: {result.parity}; {result.times}")
    return 0


def run_list(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python -m export list", description="List the registered models.").parse_args(argv)
    for spec in SPECS.values():
        outs = ", ".join(f"{t.name} {t.dtype}{list(t.dims)}" for t in spec.outputs)
        wire_in = sum(t.nbytes for t in spec.inputs)
        wire_out = sum(t.nbytes for t in spec.outputs)
        print(f"{spec.name:20} {spec.task:9} {spec.height}x{spec.width}  max batch {spec.max_batch_size:2}  "
              f"{spec.num_classes} classes  {spec.architecture}\n{'':20} IMAGE UINT8[{spec.height}, {spec.width}, 3]"
              f" -> {outs}\n{'':20} tensor bytes per image: {wire_in:,} in, {wire_out:,} out")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "list":
            return run_list(argv[1:])
        if argv and argv[0] == "import":
            from export.importer.cli import run_import

            return run_import(argv[1:])
        if argv and argv[0] == "build-engine":
            from export.tensorrt.cli import run_build_engine

            return run_build_engine(argv[1:])
        if argv and argv[0] == "verify":
            from export.tensorrt.cli import run_verify

            return run_verify(argv[1:])
        return run_export(argv)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
