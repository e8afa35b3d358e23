"""PyTorch -> ONNX with the spec's tensor names, a dynamic batch axis and one self-contained file."""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.errors import ExportError, require
from export.metadata import save_onnx
from export.spec import ModelSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def example_input(spec: ModelSpec, batch: int, seed: int = 0) -> "torch.Tensor":
    """A deterministic uint8 NHWC batch at the spec's size (smooth shapes, not noise: see export.samples)."""
    import torch

    from export.samples import synthetic_image

    images = [synthetic_image(spec.height, spec.width, seed=seed + i) for i in range(batch)]
    return torch.from_numpy(np.stack(images))


def export_onnx(module: "torch.nn.Module", spec: ModelSpec, path: Path, precision: str = "fp32") -> Path:
    """Export ``module`` (built for ``spec``) to ``path`` as one ONNX file and return the path. ``precision="fp16"``
    rewrites the graph into mixed precision (``export.precision``): FP16 compute, FP32 where numerics need it."""
    from export.precision import PRECISIONS

    if precision not in PRECISIONS:
        raise ExportError(f"Unknown precision `{precision}`. Available: {', '.join(PRECISIONS)}.")
    torch = require("torch")
    require("onnxscript")
    onnx = require("onnx")

    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic = spec.max_batch_size > 1
    # A dynamic batch axis needs an example batch of 2: torch.export specialises sizes 0 and 1.
    example = example_input(spec, 2 if dynamic else 1)
    dynamic_shapes = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=spec.max_batch_size)
        dynamic_shapes = {"image": {0: batch}}
    # A module with custom ops (Mask R-CNN's grouped NMS) names their ONNX lowering.
    translations = getattr(module, "onnx_translation_table", None)
    started = time.perf_counter()
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=spec.input_names,
                output_names=spec.output_names,
                dynamic_shapes=dynamic_shapes,
                custom_translation_table=translations() if translations else None,
                opset_version=spec.opset,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:
        log.error("exporter output:\n%s", chatter.getvalue()[-4000:])
        raise
    model = program.model_proto  # the proto program.save would write (one file, no external data), without the disk
    _name_batch_axes(model, spec)
    from export.tensorrt.rewrite import make_tensorrt_friendly

    model, rewrites = make_tensorrt_friendly(model)
    for line in rewrites:
        log.debug("TensorRT rewrite in %s: %s", spec.name, line)
    if precision == "fp16":
        from export.precision import convert_to_fp16

        model, counts = convert_to_fp16(model, fp32_ops=spec.fp32_op_types)
        log.debug("FP16 pass on %s: %s", spec.name, counts)
    _set_metadata(model, spec, rewrites, precision)
    onnx.checker.check_model(model)
    save_onnx(model, path)  # a new file each export: a repository hard-linking an earlier one keeps serving it
    log.debug("exported %s to %s in %.1f s (%.1f MB)", spec.name, path, time.perf_counter() - started,
             path.stat().st_size / 1e6)
    return path


def _set_metadata(model, spec: ModelSpec, rewrites: list[str], precision: str) -> None:
    """The spec and the graph's precision travel inside the ONNX file (``export.metadata``)."""
    from export.metadata import PRECISION_KEY, REWRITES_KEY, SPEC_KEY, set_metadata

    set_metadata(model, {SPEC_KEY: spec.to_json(), REWRITES_KEY: str(len(rewrites)), PRECISION_KEY: precision})


def _name_batch_axes(model, spec: ModelSpec) -> None:
    """Give every graph input/output the batch axis name ``batch`` and check names and ranks against the spec."""
    expected = {t.name: t for t in (*spec.inputs, *spec.outputs)}
    seen = {v.name for v in (*model.graph.input, *model.graph.output)}
    if seen != set(expected):
        raise ExportError(f"Exported graph of `{spec.name}` has tensors {sorted(seen)}, spec says {sorted(expected)}.")
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        want = expected[value.name]
        if len(dims) != len(want.dims) + 1:
            raise ExportError(f"`{spec.name}` tensor {value.name} has rank {len(dims)}, spec says "
                              f"{len(want.dims) + 1} (batch + {want.dims}).")
        # Triton's backends require a dynamic dim 0 whenever max_batch_size > 0 (onnxruntime_backend
        # src/onnxruntime_utils.cc and tensorrt_backend src/tensorrt_utils.cc, CompareDimsSupported): batch 1 too.
        if spec.max_batch_size > 0:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
        for dim, size in zip(dims[1:], want.dims):
            if dim.HasField("dim_value") and dim.dim_value != size:
                raise ExportError(f"`{spec.name}` tensor {value.name} has a dim of {dim.dim_value}, spec says {size}.")
            dim.ClearField("dim_param")
            dim.dim_value = size
