"""``python -m export import MODEL.onnx --name NAME ...``: a user's ONNX segmentation network into the repository."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from export.cli_options import (add_release_argument, add_serving_arguments, check_engine_target, check_folders,
                                serving_options, setup_logging)
from export.errors import ExportError
from export.layout import DEFAULT_WORK_DIR
from export.spec import IMAGENET_MEAN, IMAGENET_STD

EPILOG = """\
Accepted: one float32/float16 NCHW image input [N, 3, H, W] (N fixed at 1 or dynamic; H, W fixed, or dynamic with
--size) and, as the chosen output (--onnx-output, default the first), per-class scores [N, C, H', W'] (MASK =
ArgMax) or one foreground map [N, 1, H', W'] (MASK = map > --threshold), bilinearly resized to H x W when H', W'
differ. Served: IMAGE uint8 [N, H, W, 3] RGB in, MASK uint8 [N, H, W] out (+ PROBS float16 with --probs).
Example (rembg's U2-Net-p, what the built-in `u2netp` is):
  python -m export import .tools/models/u2netp.onnx --name salient --scores probabilities --minmax"""


def import_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export import", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Wrap your ONNX segmentation network in the segserve contract (uint8 NHWC in, normalisation "
                    "and ArgMax/threshold in the graph, uint8 MASK out), check it against the raw ONNX and a numpy "
                    "reference and against TensorRT's ONNX parser rules (the operator table of the default release's "
                    "TensorRT; the newest while that is unverified), and write it into a Triton model repository.")
    p.add_argument("onnx", type=Path, help="the network's ONNX file")
    p.add_argument("--name", help="served model name (default: the file's stem)")
    p.add_argument("--size", type=int, nargs="+", metavar="PX",
                   help="served input size H [W]: required when the input's height/width are dynamic")
    p.add_argument("--onnx-output", metavar="NAME", help="the graph output holding the score map (default: the first)")
    p.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), default=IMAGENET_MEAN,
                   help="per-channel mean after --scale (default: ImageNet %(default)s)")
    p.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), default=IMAGENET_STD,
                   help="per-channel std after --scale (default: ImageNet %(default)s)")
    p.add_argument("--scale", type=float, default=1 / 255,
                   help="pixel multiplier before mean/std: the network sees (pixel * scale - mean) / std "
                        "(default 1/255; use 1 with mean/std in 0..255 units)")
    p.add_argument("--classes", type=Path, metavar="FILE",
                   help="class names, one per line, C of them (default: class_0..; background/foreground for a "
                        "one-channel map)")
    p.add_argument("--scores", choices=("logits", "probabilities"), default="logits",
                   help="what the output holds (default: %(default)s): logits get a softmax (PROBS) or sigmoid "
                        "(foreground map)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="foreground map: MASK = probability > threshold (default: %(default)s)")
    p.add_argument("--minmax", action="store_true",
                   help="foreground map: stretch each image's map to [0, 1] before the threshold (rembg's way)")
    p.add_argument("--probs", action="store_true", help="also output PROBS (float16 per-class probabilities)")
    p.add_argument("--max-batch-size", type=int, default=8, help="largest batch Triton may send (default: 8)")
    add_serving_arguments(p, target_help="as for `python -m export` (default: %(default)s)")
    p.add_argument("--precision", choices=("fp16", "fp32"),
                   help="precision of the served graph (and of a TensorRT engine built from it): fp16 converts the "
                        "wrapped graph to mixed precision and gates it against the FP32 graph (default: fp16 for GPU "
                        "targets, fp32 on CPU)")
    add_release_argument(p)
    p.add_argument("--cache-dir", type=Path, help="TensorRT engine and timing cache folder")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR, help="where ONNX files go (default: %(default)s)")
    p.add_argument("--skip-parity", action="store_true", help="do not run the parity check")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def read_classes(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"Cannot read class names file `{path}`: {exc.strerror or exc}.") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise ExportError(f"Class names file `{path}` is empty: give one name per line.")
    return names


def run_import(argv: list[str]) -> int:
    from export.importer.pipeline import import_source, make_spec
    from export.importer.source import inspect

    args = import_parser().parse_args(argv)
    setup_logging(args.verbose)
    options = serving_options(args)
    size = None
    if args.size:
        if len(args.size) > 2:
            raise ExportError(f"Bad --size {' '.join(map(str, args.size))}: give H, or H W.")
        size = (args.size[0], args.size[-1])
    if not args.scale > 0:
        raise ExportError(f"Bad --scale {args.scale}: use a positive pixel multiplier, e.g. 1/255 = 0.00392.")
    # (pixel * scale - mean) / std == (pixel / 255 - mean / (255 scale)) / (std / (255 scale)): the spec's units.
    unit = 255.0 * args.scale
    mean, std = tuple(m / unit for m in args.mean), tuple(s / unit for s in args.std)
    classes = read_classes(args.classes) if args.classes else None
    check_folders(args)
    check_engine_target(args)
    started = time.perf_counter()
    source = inspect(args.onnx, size=size, output=args.onnx_output)
    spec = make_spec(args.name or args.onnx.stem, source, mean=mean, std=std, class_names=classes,
                     scores_are=args.scores, threshold=args.threshold, minmax=args.minmax, probs=args.probs,
                     max_batch_size=args.max_batch_size)
    result = import_source(source, spec, options, args.output, work_dir=args.work_dir, parity=not args.skip_parity,
                           precision=args.precision, cache_dir=args.cache_dir, release=args.release,
                           seconds={"inspect": time.perf_counter() - started})
    head = "ArgMax" if spec.output_kind == "scores" else \
        f"map > {spec.foreground_threshold:g}" + (" after min-max" * spec.minmax)
    print(f"{spec.name}: {result.model_dir} ({options.target}), {spec.height}x{spec.width}, {spec.num_classes} classes "
          f"({head}), ONNX {result.onnx_bytes / 1e6:.1f} MB; parity: {result.parity}; {result.times}")
    return 0
