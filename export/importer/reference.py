"""The wrapped graph's pre/post-processing again, in numpy, around the raw (unwrapped) ONNX network, and the
parity check between the two: an error in the wrapper (channel order, mean/std, a threshold) shows up here because
the reference is written independently of the graph builder."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from export.compare import PARITY, Agreement, compare_masks
from export.errors import ExportError
from export.importer.source import SourceGraph
from export.importer.wrap import EPSILON
from export.spec import ModelSpec

log = logging.getLogger(__name__)

PROBS_TOLERANCE = 2e-3  # float16 probabilities: half an fp16 step near 1 plus float32 rounding


def preprocess(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW, (pixel / 255 - mean) / std."""
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / np.float32(255.0)
    mean = np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


def resize_bilinear(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """[N, C, h, w] -> [N, C, height, width], bilinear with half-pixel centres, edges clamped."""

    def matrix(out_size: int, in_size: int) -> np.ndarray:
        src = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0, in_size - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, in_size - 1)
        m = np.zeros((out_size, in_size), np.float64)
        np.add.at(m, (np.arange(out_size), lo), 1 - (src - lo))
        np.add.at(m, (np.arange(out_size), hi), src - lo)
        return m

    ry, rx = matrix(height, scores.shape[2]), matrix(width, scores.shape[3])
    return np.einsum("yh,nchw,xw->ncyx", ry, scores.astype(np.float64), rx).astype(np.float32)


def postprocess(scores: np.ndarray, spec: ModelSpec) -> dict[str, np.ndarray]:
    """The network's [N, C, h, w] score map -> the spec's outputs (MASK [+ PROBS])."""
    scores = scores.astype(np.float32)
    if scores.shape[2:] != (spec.height, spec.width):
        scores = resize_bilinear(scores, spec.height, spec.width)
    mask_dtype = spec.outputs[0].np_dtype
    if spec.output_kind == "scores":
        out = {"MASK": scores.argmax(axis=1).astype(mask_dtype)}
        if spec.scores_are == "logits":
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        else:
            probs = scores
    else:
        p = 1.0 / (1.0 + np.exp(-scores)) if spec.scores_are == "logits" else scores
        if spec.minmax:
            low = p.min(axis=(1, 2, 3), keepdims=True)
            p = (p - low) / np.maximum(p.max(axis=(1, 2, 3), keepdims=True) - low, np.float32(EPSILON))
        out = {"MASK": (p[:, 0] > np.float32(spec.foreground_threshold)).astype(mask_dtype)}
        probs = np.concatenate([1.0 - p, p], axis=1)
    if spec.with_probs:
        out["PROBS"] = probs.astype(np.float16)
    return out


def run_reference(source: SourceGraph, spec: ModelSpec, images: np.ndarray) -> dict[str, np.ndarray]:
    """numpy pre-processing -> the raw ONNX file in ONNX Runtime (one image at a time when its batch is fixed)
    -> numpy post-processing."""
    from export.parity import ort_session

    session = ort_session(source.path)
    x = preprocess(images, spec).astype(np.float16 if source.input_elem == 10 else np.float32)
    chunks = [x[i:i + 1] for i in range(len(x))] if source.batch == 1 else [x]
    scores = np.concatenate([session.run([source.output_name], {source.input_name: c})[0] for c in chunks])
    return postprocess(scores, spec)


def check_parity(source: SourceGraph, spec: ModelSpec, wrapped_path: Path, images: np.ndarray) -> Agreement:
    """Wrapped graph vs (numpy + raw ONNX + numpy) on the same uint8 batch; a failure raises with the numbers."""
    from export.parity import run_onnxruntime

    reference = run_reference(source, spec, images)
    try:
        candidate = run_onnxruntime(wrapped_path, spec, images)
    except Exception as exc:  # e.g. a graph that hard-codes batch 1 in a Reshape
        hint = " (does the network hard-code its batch size? try --max-batch-size 1)" if len(images) > 1 else ""
        raise ExportError(f"The wrapped `{spec.name}` graph fails in ONNX Runtime on a batch of {len(images)}"
                          f"{hint}: {str(exc).strip().splitlines()[0][:300]}") from None
    for want in spec.outputs:
        got = candidate[want.name]
        if got.dtype != want.np_dtype or tuple(got.shape[1:]) != want.dims:
            raise ExportError(f"Wrapped output {want.name} of `{spec.name}` is {got.dtype}{list(got.shape)}, spec "
                              f"says {want.np_dtype}[batch, {', '.join(map(str, want.dims))}].")
    agreement = compare_masks(reference["MASK"], candidate["MASK"], PARITY)
    summary = agreement.summary
    passed = agreement.passed
    if spec.with_probs:
        err = float(np.abs(reference["PROBS"].astype(np.float32) - candidate["PROBS"].astype(np.float32)).max())
        summary += f"; PROBS max error {err:.2e} (<= {PROBS_TOLERANCE:g})"
        passed = passed and err <= PROBS_TOLERANCE
    if not passed:
        raise ExportError(f"Parity check failed for `{spec.name}` (wrapped graph vs raw ONNX + numpy reference): "
                          f"{summary}.")
    log.debug("import parity %s: %s", spec.name, summary)
    return Agreement(True, summary + " vs raw ONNX + numpy reference", pixel_agreement=agreement.pixel_agreement)
