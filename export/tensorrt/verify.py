"""An engine on this GPU vs ONNX Runtime running the FP32 graph of the same model, with the FP16 gate
(``export.precision.fp16_gate``): what a user runs to check an engine (``python -m export verify MODEL``)."""

from __future__ import annotations

from pathlib import Path

from export.errors import ExportError
from export.layout import DEFAULT_CACHE_DIR, DEFAULT_WORK_DIR, onnx_path_for
from export.spec import ModelSpec


def run_engine(plan_path: Path, spec: ModelSpec, batches: list) -> list[dict]:
    """Run a plan on uint8 batches with Polygraphy's TrtRunner (engine deserialised once); outputs keyed by the
    spec's names, one dict per batch."""
    from export.tensorrt.build import installed_tensorrt

    installed_tensorrt()  # the one-line install hint when TensorRT is missing, before polygraphy's import error
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    results = []
    with TrtRunner(EngineFromBytes(BytesFromPath(str(plan_path)))) as runner:
        for images in batches:
            outputs = runner.infer(feed_dict={spec.image.name: images})
            results.append({name: outputs[name] for name in spec.output_names})
    return results


def _ensure_exports(model: str, onnx_path: Path, reference_onnx: Path, precision: str, size: int | None) -> None:
    """Export the model (random weights, seed 0) in ``precision`` and in FP32 from one module, where missing."""
    if onnx_path.is_file() and reference_onnx.is_file():
        return
    import torch

    from export.models import build_served_module
    from export.onnx_export import export_onnx
    from export.spec import get_spec

    torch.manual_seed(0)
    spec = get_spec(model).with_options(size=size)
    module = build_served_module(spec)
    if not reference_onnx.is_file():
        export_onnx(module, spec, reference_onnx, precision="fp32")
    if not onnx_path.is_file():
        export_onnx(module, spec, onnx_path, precision=precision)


def verify(model: str, *, onnx_path: Path | None = None, reference_onnx: Path | None = None,
           plan_path: Path | None = None, work_dir: Path = DEFAULT_WORK_DIR, cache_dir: Path = DEFAULT_CACHE_DIR,
           precision: str = "fp16", release: str | None = None, images: int = 4, size: int | None = None):
    """The least agreeing image's result (or the first failing one) of the engine vs the FP32 reference graph."""
    from export.metadata import spec_and_precision, spec_from_onnx
    from export.onnx_export import example_input
    from export.parity import ort_session, run_onnxruntime
    from export.precision import fp16_gate
    from export.tensorrt.build import BuildOptions, build_engine
    from export.tensorrt.sidecar import check_plan_for_gpu

    onnx_path = onnx_path or onnx_path_for(work_dir, model)
    reference_onnx = reference_onnx or onnx_path_for(work_dir, f"{model}-fp32")
    _ensure_exports(model, onnx_path, reference_onnx, precision, size)
    spec, onnx_precision = spec_and_precision(onnx_path)
    if spec.name != model or spec_from_onnx(reference_onnx) != spec:
        raise ExportError(f"{onnx_path} and {reference_onnx} must hold the same `{model}` spec.")
    if plan_path is None:
        plan_path = build_engine(onnx_path, spec=spec, precision=onnx_precision,
                                 options=BuildOptions(release=release), cache_dir=cache_dir).plan_path
    check_plan_for_gpu(plan_path)
    session = ort_session(reference_onnx)
    batches = [example_input(spec, 1, seed=100 + seed).numpy() for seed in range(images)]
    results = []
    for batch, candidate in zip(batches, run_engine(plan_path, spec, batches)):
        reference = run_onnxruntime(reference_onnx, spec, batch, session=session)
        result = fp16_gate(spec.task, reference, candidate, max_detections=spec.max_detections)
        if not result.passed:
            return result
        results.append(result)
    return min(results, key=lambda r: r.pixel_agreement if r.pixel_agreement is not None else r.matched)
