"""Command-line options shared by ``python -m export`` and ``python -m export import``: where a model is written,
how Triton serves it, and how much they log. One definition, so both commands take and check them alike."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from export.config import DEVICES, TARGETS, ServingOptions
from export.errors import ExportError

MAX_INSTANCES = 64
QUIET_LOGGERS = ("onnxscript", "onnx_ir", "torch", "torch.onnx", "polygraphy")


def setup_logging(verbose: bool) -> None:
    """INFO (DEBUG with -v) as ``LEVEL message``; the exporters' own chatter only from WARNING (INFO with -v)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if not verbose else logging.INFO)


def add_serving_arguments(p: argparse.ArgumentParser, *, target_help: str) -> None:
    """``--target --output --device --instances --trt-accelerator``."""
    p.add_argument("--target", choices=TARGETS, default="local", help=target_help)
    p.add_argument("--output", type=Path, default=Path("model_repository"),
                   help="model repository folder (default: %(default)s)")
    p.add_argument("--device", choices=DEVICES, help="instance kind (default: cpu for local, gpu otherwise)")
    p.add_argument("--instances", type=int, default=1,
                   help=f"model instances per device, 1..{MAX_INSTANCES} (default: 1)")
    p.add_argument("--trt-accelerator", action="store_true",
                   help="onnxruntime target on GPU: enable Triton's TensorRT execution accelerator in FP16")


def add_release_argument(p: argparse.ArgumentParser) -> None:
    """``--release``: the NGC release of the Triton that serves a TensorRT engine."""
    p.add_argument("--release", metavar="YY.MM", help="tensorrt target: NGC release of the serving Triton image; "
                   "the installed TensorRT must be its version (default: the version table's default)")


def check_folders(args: argparse.Namespace) -> None:
    """``--output --work-dir --cache-dir`` name folders (created if missing): a file in the way is a one-line error
    in the first second, not after minutes of export."""
    for flag, path in (("--output", args.output), ("--work-dir", args.work_dir), ("--cache-dir", args.cache_dir)):
        if path is None:
            continue
        blocker = next((p for p in (path, *path.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise ExportError(f"Bad {flag} `{path}`: `{blocker}` is a file; name a folder (it is created if missing).")


def check_engine_target(args: argparse.Namespace) -> None:
    """For an engine built here (``--target tensorrt`` without ``--plan``): the release is known, TensorRT is
    installed and is that release's, and there is a GPU. Checked before minutes of export, not after."""
    if args.target != "tensorrt" or getattr(args, "plan", None):
        return
    from export.releases import get_release
    from export.tensorrt.build import installed_tensorrt
    from export.tensorrt.gpu import detect_gpu
    from export.tensorrt.sidecar import check_release

    get_release(args.release)  # an unknown release is named before a missing TensorRT
    check_release(installed_tensorrt(), args.release)
    detect_gpu()


def serving_options(args: argparse.Namespace) -> ServingOptions:
    """The parsed serving arguments as checked ``ServingOptions`` (a count out of range is a one-line error)."""
    if not 1 <= args.instances <= MAX_INSTANCES:
        raise ExportError(f"Bad --instances {args.instances}: use 1..{MAX_INSTANCES}.")
    return ServingOptions.for_target(args.target, instances=args.instances, trt_accelerator=args.trt_accelerator,
                                     **({"device": args.device} if args.device else {}))
