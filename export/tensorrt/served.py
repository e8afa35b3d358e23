"""``build-engine``'s output: a complete served ``tensorrt_plan`` model directory for every source ONNX file.

    SRC/<model>/1/model.onnx   (an ``--target onnxruntime`` repository, or --onnx files)
      -> DST/<model>/{config.pbtxt (platform tensorrt_plan), labels.txt, 1/model.plan, model.plan.json}

The spec inside each ONNX file's metadata generates config.pbtxt and labels.txt (no torch, no segserve model code);
the layout is ``export.layout``'s, written by the same ``export.repository.write_model`` as every other target. The
engine build is a parameter (``builder``), so tests write real directories from a fake build on CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

from export.errors import ExportError
from export.spec import ModelSpec
from export.tensorrt.build import Builder, BuildOptions, EngineBuild, build_engine
from export.tensorrt.gpu import GpuInfo

log = logging.getLogger(__name__)


def plan_sources(onnx_files: list[Path], expected_precision: str | None) -> list[tuple[Path, ModelSpec, str]]:
    """Each source file with its spec and precision, checked before any build: readable, from segserve, one per model
    name, and of the expected precision (a strongly typed engine computes in the graph's precision)."""
    from export.metadata import spec_and_precision

    if not onnx_files:
        raise ExportError("No ONNX files to build: the source repository has no <model>/1/model.onnx.")
    seen: dict[str, Path] = {}
    sources = []
    for path in onnx_files:
        spec, precision = spec_and_precision(path)
        if spec.name in seen:
            raise ExportError(f"Two sources for `{spec.name}`: {seen[spec.name]} and {path}.")
        seen[spec.name] = path
        if expected_precision and precision != expected_precision:
            raise ExportError(f"{path} is an {precision} graph, --precision says {expected_precision}: re-export it "
                              f"with `python -m export {spec.name} --precision {expected_precision}` (a strongly "
                              "typed engine computes in the graph's precision) or pass --precision "
                              f"{precision}.")
        sources.append((path, spec, precision))
    return sources


def build_served_models(sources: list[tuple[Path, ModelSpec, str]], repository: Path, *, cache_dir: Path,
                        options: BuildOptions, builder: Builder | None = None, tensorrt_version: str | None = None,
                        gpu: GpuInfo | None = None) -> list[tuple[Path, EngineBuild]]:
    """Build (or take from the cache) each engine and write its served model directory into ``repository``."""
    from export.config import ServingOptions
    from export.repository import write_model

    written = []
    for onnx_path, spec, precision in sources:
        result = build_engine(onnx_path, spec=spec, precision=precision, options=options, cache_dir=cache_dir,
                              builder=builder, tensorrt_version=tensorrt_version, gpu=gpu)
        s = result.sidecar
        built_on = GpuInfo(s.gpu_name, s.compute_capability, s.mig_profile)
        model_dir = write_model(spec, ServingOptions.for_target("tensorrt"), repository, plan_path=result.plan_path,
                                target_gpu=built_on)
        log.info("wrote %s (%s engine%s)", model_dir, s.precision, ", cached" if result.cached else "")
        written.append((model_dir, result))
    return written
