"""Parity check after export: ONNX Runtime vs PyTorch eager on the same uint8 input."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.compare import PARITY, Agreement, Thresholds, compare_outputs
from export.errors import ExportError, require
from export.spec import ModelSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def run_eager(module: "torch.nn.Module", spec: ModelSpec, images: np.ndarray) -> dict[str, np.ndarray]:
    """The served module in PyTorch on a uint8 NHWC batch, outputs keyed by the spec's names."""
    import torch

    with torch.inference_mode():
        out = module(torch.from_numpy(np.ascontiguousarray(images)))
    out = out if isinstance(out, (tuple, list)) else (out,)
    return {name: t.numpy() for name, t in zip(spec.output_names, out)}


def ort_session(model: Path | bytes, threads: int = 0, optimise: bool = True):
    """A CPU session for an ONNX file or serialised model; ``optimise=False`` runs the graph op by op as written."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not optimise:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])


def run_onnxruntime(onnx_path: Path, spec: ModelSpec, images: np.ndarray, session=None) -> dict[str, np.ndarray]:
    session = session or ort_session(onnx_path)
    outs = session.run(spec.output_names, {spec.image.name: images})
    return dict(zip(spec.output_names, outs))


def check_output_types(spec: ModelSpec, outputs: dict[str, np.ndarray]) -> None:
    """Raise unless every output has the spec's dtype and per-item dims (the served contract)."""
    for want in spec.outputs:
        got = outputs[want.name]
        if got.dtype != want.np_dtype or tuple(got.shape[1:]) != want.dims:
            raise ExportError(f"ONNX output {want.name} of `{spec.name}` is {got.dtype}{list(got.shape)}, spec says "
                              f"{want.np_dtype}[batch, {', '.join(map(str, want.dims))}].")


def check_parity(module: "torch.nn.Module", spec: ModelSpec, onnx_path: Path, images: np.ndarray,
                 limits: Thresholds = PARITY) -> Agreement:
    """Run both and compare; a failure raises with the measured numbers."""
    reference = run_eager(module, spec, images)
    candidate = run_onnxruntime(onnx_path, spec, images)
    check_output_types(spec, candidate)
    agreement = compare_outputs(spec.task, reference, candidate, max_detections=spec.max_detections, limits=limits,
                                score_threshold=spec.score_threshold)
    if not agreement.passed:
        raise ExportError(f"Parity check failed for `{spec.name}` (ONNX Runtime vs PyTorch): {agreement.summary}.")
    log.debug("parity %s: %s", spec.name, agreement.summary)
    return agreement
