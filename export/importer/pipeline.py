"""One import: checked source -> spec -> wrapped ONNX (spec in its metadata) -> parity -> static TensorRT check ->
[TensorRT engine] -> model repository, for any target."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from export.config import ServingOptions
from export.errors import ExportError, require
from export.importer.source import SourceGraph
from export.layout import DEFAULT_WORK_DIR, onnx_path_for
from export.metadata import REWRITES_KEY, SPEC_KEY, save_onnx, set_metadata
from export.pipeline import ExportResult, build_engine_for, timed
from export.spec import FOREGROUND_CLASSES, IMAGENET_MEAN, IMAGENET_STD, IMPORTED_FP32_OPS, ModelSpec

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SCORE_KINDS = ("logits", "probabilities")
SOURCE_KEY = "segserve.source"


def make_spec(name: str, source: SourceGraph, *, mean=IMAGENET_MEAN, std=IMAGENET_STD,
              class_names: tuple[str, ...] | None = None, scores_are: str = "logits", threshold: float = 0.5,
              minmax: bool = False, probs: bool = False, max_batch_size: int = 8) -> ModelSpec:
    """The spec of an imported network; every value checked with an error that names it."""
    if not NAME_PATTERN.match(name):
        raise ExportError(f"Bad model name `{name}`: use letters, digits, `_`, `.`, `-` (at most 64, not starting "
                          "with a symbol).")
    if scores_are not in SCORE_KINDS:
        raise ExportError(f"Bad score kind `{scores_are}`: use one of {', '.join(SCORE_KINDS)}.")
    for label, values in (("mean", mean), ("std", std)):
        if len(values) != 3:
            raise ExportError(f"Bad --{label} {list(values)}: give 3 values (R G B).")
    if any(v <= 0 for v in std):
        raise ExportError(f"Bad --std {list(std)}: every value must be > 0.")
    foreground = source.channels == 1
    if not foreground and (minmax or threshold != 0.5):
        raise ExportError(f"`{source.path.name}` returns {source.channels} class scores (ArgMax decides the mask): "
                          "--threshold and --minmax apply to a one-channel foreground map only.")
    if not 0.0 <= threshold < 1.0:
        raise ExportError(f"Bad --threshold {threshold}: the map is compared as a probability (after a sigmoid for "
                          "logits), so use 0 <= t < 1.")
    want = 2 if foreground else source.channels
    if class_names is None:
        from export.classes import generic_classes

        class_names = FOREGROUND_CLASSES if foreground else generic_classes(want)
    if len(class_names) != want:
        kind = "a foreground map (background + foreground)" if foreground else f"{source.channels} class scores"
        raise ExportError(f"{len(class_names)} class names given, but `{source.path.name}` returns {kind}: "
                          f"give {want} names, one per line.")
    # The batch size goes through with_options: its range check and preferred-batch rule are the spec's own.
    return ModelSpec(
        name=name, task="semantic",
        architecture=f"imported ONNX {source.path.name} (sha256 {source.sha256[:12]}, output {source.output_name})",
        height=source.height, width=source.width, class_names=tuple(class_names), max_batch_size=1,
        preferred_batch_sizes=(), mean=tuple(mean), std=tuple(std), with_probs=probs, fp32_op_types=IMPORTED_FP32_OPS,
        opset=source.opset, output_kind="foreground" if foreground else "scores", scores_are=scores_are,
        foreground_threshold=threshold, minmax=minmax,
    ).with_options(max_batch_size=max_batch_size)


def check_fits(source: SourceGraph, spec: ModelSpec) -> None:
    """A registered spec (a built-in import) must describe the file it is built from."""
    foreground = source.channels == 1
    if (source.height, source.width) != (spec.height, spec.width):
        raise ExportError(f"`{spec.name}` is {spec.height}x{spec.width}, but {source.path.name} takes "
                          f"{source.height}x{source.width}.")
    if foreground != (spec.output_kind == "foreground") or (not foreground and source.channels != spec.num_classes):
        raise ExportError(f"`{spec.name}` expects {spec.num_classes} classes ({spec.output_kind}), but "
                          f"{source.path.name} output `{source.output_name}` has {source.channels} channels.")


def write_onnx(model, spec: ModelSpec, source: SourceGraph, path: Path) -> "onnx.ModelProto":
    """Rewrite for TensorRT, put the spec in the metadata, check and write ``path`` aside-then-rename; returns the
    model written, so later steps need not read it back."""
    onnx = require("onnx")
    from export.tensorrt.rewrite import make_tensorrt_friendly

    model, rewrites = make_tensorrt_friendly(model)
    # The keys a built-in export writes (export/onnx_export.py), plus where the network came from. The graph is
    # FP32: files without a precision entry read as FP32.
    set_metadata(model, {SPEC_KEY: spec.to_json(), REWRITES_KEY: str(len(rewrites)),
                         SOURCE_KEY: f"{source.path.name} sha256:{source.sha256} output:{source.output_name}"})
    onnx.checker.check_model(model)
    save_onnx(model, path)
    return model


def static_tensorrt_check(path: Path, spec: ModelSpec, options: ServingOptions, release: str | None = None,
                          model: "onnx.ModelProto | None" = None) -> str:
    """TensorRT's ONNX parser rules (export/tensorrt/static_check.py, the table of NGC ``release``'s TensorRT) on the
    wrapped graph: an error for the tensorrt target, a warning otherwise (ONNX Runtime serves what TensorRT would
    refuse). ``model``: the graph at ``path`` when the caller holds it (not read again)."""
    from export.metadata import load_onnx
    from export.tensorrt.static_check import check_model, release_target

    tensorrt, table = release_target(release)
    findings = check_model(model if model is not None else load_onnx(path), spec.name, tensorrt)
    if not findings:
        return f"TensorRT static check ({table}): no findings"
    listing = "; ".join(str(f) for f in findings[:3]) + (f"; ... {len(findings) - 3} more" if len(findings) > 3 else "")
    if options.target == "tensorrt" or options.trt_accelerator:
        raise ExportError(f"`{spec.name}` will not parse in TensorRT ({table}): {listing}.")
    log.warning("`%s` would not parse in TensorRT (%s; fine for ONNX Runtime targets): %s", spec.name, table, listing)
    return f"TensorRT static check ({table}): {len(findings)} findings"


def to_fp16(onnx_path: Path, spec: ModelSpec, model: "onnx.ModelProto") -> str:
    """Replace the wrapped FP32 graph (``model``, at ``onnx_path``) by its mixed-precision form (export.precision)
    after gating it against the FP32 graph in ONNX Runtime (``fp16_agreement``); the FP32 graph stays when the gate
    fails (with the numbers)."""
    import numpy as np

    from export.metadata import PRECISION_KEY, metadata_of
    from export.parity import run_onnxruntime
    from export.precision import convert_to_fp16, fp16_agreement
    from export.samples import synthetic_image

    half_model, _ = convert_to_fp16(model, fp32_ops=spec.fp32_op_types)
    set_metadata(half_model, {**metadata_of(model), PRECISION_KEY: "fp16"})
    half = save_onnx(half_model, onnx_path.with_name(onnx_path.stem + ".fp16.onnx"))
    images = np.stack([synthetic_image(spec.height, spec.width, seed=11 + i) for i in range(2)])[
        : max(1, min(2, spec.max_batch_size))]
    try:
        agreement = fp16_agreement(spec, run_onnxruntime(onnx_path, spec, images), half, images)
        if not agreement.passed:
            raise ExportError(f"FP16 accuracy gate failed for `{spec.name}` (FP16 vs FP32 graph): "
                              f"{agreement.summary}. Import with --precision fp32.")
    except BaseException:
        half.unlink()
        raise
    os.replace(half, onnx_path)
    return f"FP16 vs FP32 graph: {agreement.summary}"


def import_source(source: SourceGraph, spec: ModelSpec, options: ServingOptions, repository: Path, *,
                  work_dir: Path = DEFAULT_WORK_DIR, parity: bool = True, precision: str | None = None,
                  cache_dir: Path | None = None, plan: Path | None = None, target_gpu=None,
                  release: str | None = None, seconds: dict[str, float] | None = None) -> ExportResult:
    """Wrap ``source`` as ``spec`` and write it into ``repository`` for ``options.target`` (an engine: for the
    Triton of NGC ``release``, default the version table's default)."""
    from export.importer.wrap import wrap
    from export.precision import default_precision
    from export.repository import write_model

    seconds = dict(seconds or {})
    precision = precision or default_precision(options.target, options.device)
    onnx_path = onnx_path_for(work_dir, spec.name)
    with timed(seconds, "wrap"):
        model = write_onnx(wrap(source, spec), spec, source, onnx_path)

    summary = "skipped"
    if parity:
        import numpy as np

        from export.importer.reference import check_parity
        from export.samples import synthetic_image

        with timed(seconds, "parity"):
            images = np.stack([synthetic_image(spec.height, spec.width, seed=1 + i)
                               for i in range(2 if spec.max_batch_size > 1 else 1)])
            summary = check_parity(source, spec, onnx_path, images).summary

    with timed(seconds, "trt-check"):
        summary += "; " + static_tensorrt_check(onnx_path, spec, options, release, model)

    if precision == "fp16":
        with timed(seconds, "fp16"):
            summary += "; " + to_fp16(onnx_path, spec, model)

    plan_path = plan
    if options.target == "tensorrt" and plan_path is None:
        with timed(seconds, "tensorrt"):
            plan_path = build_engine_for(onnx_path, spec, precision, release=release, cache_dir=cache_dir,
                                         work_dir=work_dir)

    with timed(seconds, "repository"):
        model_dir = write_model(spec, options, repository, onnx_path=onnx_path, plan_path=plan_path,
                                target_gpu=target_gpu)
    return ExportResult(spec, model_dir, onnx_path, onnx_path.stat().st_size, seconds, summary)
