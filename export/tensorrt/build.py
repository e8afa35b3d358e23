"""ONNX -> TensorRT engine: a strongly typed network (precision comes from the graph), cached per GPU + options.

``build_engine`` is the cached, locked build around one call of a *builder* (``build_serialized`` by default: the
only code here that calls TensorRT). Tests pass a fake builder and exercise everything else (cache keys, locks,
sidecars, release checks, the served directory) on CPU.

TensorRT API (10.x Python bindings; ``python/docstrings/infer/pyCoreDoc.h`` of NVIDIA/TensorRT release/10.13 quoted):

- ``create_network(1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED))``: "every tensor in the network has a
  data type defined in the network ... Setting layer precision and layer output types is not allowed". So no
  ``BuilderFlag.FP16``, no ``OBEY_PRECISION_CONSTRAINTS``, no ``layer.precision``/``set_output_type`` (deprecated in
  10.12, removed in 11; in TensorRT 11 strong typing is always on: release/11.1 ``pyCore.cpp`` marks the flag
  "Deprecated: always enabled"). The FP16 graph comes from ``export.precision``; ``make test`` runs that graph.
- ``BuilderFlag.TF32``: "Allow ... computations on tensors of type DataType.FLOAT to use TF32 ... Enabled by
  default." Cleared: the FP32 parts of a graph (all of an FP32 graph; logits, box decoding, reductions of an FP16
  one) are FP32 because accuracy needs them to be, and the accuracy gate assumes they are.
- ``IBuilderConfig.set_timing_cache(cache, ignore_mismatch)`` "returns: A BOOL indicating whether the operation is
  done successfully" (a cache from another device/version is refused): checked; on False the build starts from an
  empty cache. ``ITimingCache.combine(input_cache, ignore_mismatch) -> bool`` merges this build's entries into the
  cache on disk under a lock, so concurrent builds add to one cache instead of overwriting each other.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from export.assets import sha256
from export.errors import ExportError, require
from export.layout import DEFAULT_CACHE_DIR, sidecar_path
from export.spec import ModelSpec
from export.tensorrt import cache
from export.tensorrt.gpu import GpuInfo
from export.tensorrt.sidecar import Sidecar, check_release

log = logging.getLogger(__name__)

TENSORRT_PACKAGE = "tensorrt-cu12"
DEFAULT_LOCK_TIMEOUT_S = 3 * 3600  # a large engine builds for tens of minutes; a waiting pod gives up after this


@dataclass(frozen=True)
class BuildOptions:
    workspace_bytes: int = 4 << 30
    progress: bool = True
    release: str | None = None  # NGC yy.mm of the Triton that serves the engine (None: the table's default)
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.workspace_bytes < (64 << 20):
            raise ExportError(f"Workspace of {self.workspace_bytes} bytes is too small: use at least 64 MiB.")
        if self.lock_timeout_s <= 0:
            raise ExportError(f"Bad lock timeout {self.lock_timeout_s}: use a positive number of seconds.")


@dataclass(frozen=True)
class EngineBuild:
    plan_path: Path
    sidecar: Sidecar
    cached: bool


# (onnx path, spec, options, timing cache path) -> serialized engine bytes
Builder = Callable[[Path, ModelSpec, BuildOptions, Path], bytes]


def profiles_for(spec: ModelSpec) -> dict[str, dict[str, list[int]]]:
    """Optimisation profile shapes for every input, from the spec's (min, opt, max) batch."""
    low, opt, high = spec.batch_profile
    return {t.name: {"min": [low, *t.dims], "opt": [opt, *t.dims], "max": [high, *t.dims]} for t in spec.inputs}


def installed_tensorrt() -> str:
    return require("tensorrt", TENSORRT_PACKAGE, extra="tensorrt").__version__


def build_engine(onnx_path: Path, *, spec: ModelSpec | None = None, precision: str | None = None,
                 options: BuildOptions = BuildOptions(), cache_dir: Path = DEFAULT_CACHE_DIR,
                 plan_path: Path | None = None, builder: Builder | None = None, tensorrt_version: str | None = None,
                 gpu: GpuInfo | None = None) -> EngineBuild:
    """Build (or reuse from ``cache_dir``) the engine for ``onnx_path`` on this GPU; copy it to ``plan_path``.

    ``spec`` and ``precision`` are what the file's metadata says: a caller that has read them passes them, so the
    file is not parsed again. ``builder``, ``tensorrt_version`` and ``gpu`` default to the real TensorRT and this
    machine's GPU 0."""
    from export.metadata import precision_from_onnx, spec_and_precision
    from export.tensorrt.gpu import detect_gpu

    tensorrt_version = tensorrt_version or installed_tensorrt()
    builder = builder or build_serialized
    note = check_release(tensorrt_version, options.release)  # refuse before any work
    if note:
        log.info("%s", note)
    if spec is None:
        spec, precision = spec_and_precision(onnx_path)
    elif precision is None:
        precision = precision_from_onnx(onnx_path)
    gpu = gpu or detect_gpu()
    onnx_sha = sha256(onnx_path)
    key = cache.cache_key(onnx_sha, precision=precision, workspace_bytes=options.workspace_bytes,
                          tensorrt_version=tensorrt_version, gpu=gpu)
    cached_plan = cache.plan_path(cache_dir, gpu, tensorrt_version, key)
    with cache.file_lock(cached_plan.with_suffix(".lock"), options.lock_timeout_s):
        hit = _cached(cached_plan, onnx_sha, gpu, tensorrt_version)
        if hit is not None:
            log.info("engine cache hit for %s on %s (TensorRT %s): %s", spec.name, gpu.name, tensorrt_version,
                     cached_plan)
            return EngineBuild(_deliver(cached_plan, plan_path), hit, cached=True)
        log.info("building %s engine for %s: TensorRT %s, GPU %s (compute capability %s%s)", precision, spec.name,
                 tensorrt_version, gpu.name, gpu.compute_capability,
                 f", MIG {gpu.mig_profile}" if gpu.mig_profile else "")
        started = time.perf_counter()
        serialized = builder(onnx_path, spec, options, cache.timing_cache_path(cache_dir, gpu, tensorrt_version))
        sidecar = Sidecar(
            model=spec.name, tensorrt_version=tensorrt_version, gpu_name=gpu.name, gpu_product=gpu.product,
            compute_capability=gpu.compute_capability, mig_profile=gpu.mig_profile, precision=precision,
            profiles=profiles_for(spec), onnx_sha256=onnx_sha, release=options.release or "", cache_key=key,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.perf_counter() - started, 1))
        # Plan first, sidecar second: a sidecar on disk always describes a complete plan.
        cache.atomic_write(cached_plan, serialized)
        sidecar.write(sidecar_path(cached_plan))
    log.info("built %s in %.0f s (%.1f MB)", cached_plan, sidecar.build_seconds, len(serialized) / 1e6)
    return EngineBuild(_deliver(cached_plan, plan_path), sidecar, cached=False)


def _cached(plan: Path, onnx_sha: str, gpu: GpuInfo, tensorrt_version: str) -> Sidecar | None:
    if not (plan.is_file() and sidecar_path(plan).is_file()):
        return None
    try:
        sidecar = Sidecar.read(sidecar_path(plan))
    except ExportError as exc:
        log.warning("ignoring the cached engine %s: %s", plan, exc)
        return None
    if sidecar.onnx_sha256 != onnx_sha or sidecar.mismatch(gpu, tensorrt_version):
        return None
    return sidecar


def _deliver(cached: Path, plan_path: Path | None) -> Path:
    """Copy the cached plan and its sidecar to ``plan_path`` (each written aside and renamed into place)."""
    if plan_path is None or plan_path.resolve() == cached.resolve():
        return cached
    for src, dst in ((cached, plan_path), (sidecar_path(cached), sidecar_path(plan_path))):
        dst.parent.mkdir(parents=True, exist_ok=True)
        partial = dst.with_name(f".{dst.name}.partial")
        shutil.copyfile(src, partial)
        partial.replace(dst)
    return plan_path


def build_serialized(onnx_path: Path, spec: ModelSpec, options: BuildOptions, timing_cache: Path) -> bytes:
    """The TensorRT build itself: parse, strongly typed network, profiles from the spec, timing cache, build."""
    trt = require("tensorrt", TENSORRT_PACKAGE, extra="tensorrt")
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # RoiAlign imports as the ROIAlign_TRT plugin
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, shapes in profiles_for(spec).items():
        profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    _attach_timing_cache(config, timing_cache)
    if options.progress:
        config.progress_monitor = _progress_monitor(trt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine for `{spec.name}` (see the log above).")
    _save_timing_cache(config, timing_cache, options.lock_timeout_s)
    return bytes(memoryview(serialized))


def _attach_timing_cache(config, path: Path) -> None:
    data = path.read_bytes() if path.is_file() else b""
    timing = config.create_timing_cache(data)
    if timing is not None and config.set_timing_cache(timing, ignore_mismatch=False):
        return
    log.warning("timing cache %s was made by another TensorRT or GPU: starting an empty one", path)
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise ExportError("TensorRT refused an empty timing cache.")


def _save_timing_cache(config, path: Path, lock_timeout_s: float) -> None:
    """Merge this build's timing cache into the one on disk (another build may have added to it meanwhile)."""
    ours = config.get_timing_cache()
    if ours is None:
        return
    with cache.timing_cache_lock(path, lock_timeout_s):
        merged = ours
        if path.is_file():
            on_disk = config.create_timing_cache(path.read_bytes())
            if on_disk is not None and on_disk.combine(ours, False):
                merged = on_disk
            else:
                log.warning("timing cache %s could not be combined with this build's: replacing it", path)
        cache.atomic_write(path, bytes(memoryview(merged.serialize())))


def _progress_monitor(trt):
    """TensorRT's IProgressMonitor driving one tqdm bar per build phase."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, tqdm] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = 0 if parent_phase is None else 1 + (parent_phase in self.bars)
            self.bars[phase_name] = tqdm(total=num_steps, desc=("  " * depth) + phase_name, leave=depth == 0,
                                         unit="step")

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()
