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


def serving_options(args: argparse.Namespace) -> ServingOptions:
    """The parsed serving arguments as checked ``ServingOptions`` (a count out of range is a one-line error)."""
    if not 1 <= args.instances <= MAX_INSTANCES:
        raise ExportError(f"Bad --instances {args.instances}: use 1..{MAX_INSTANCES}.")
    return ServingOptions.for_target(args.target, instances=args.instances, trt_accelerator=args.trt_accelerator,
                                     **({"device": args.device} if args.device else {}))
