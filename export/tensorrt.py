"""TensorRT 10 engine builds: ONNX -> FP16 (or FP32) ``model.plan`` with a JSON sidecar, cached per GPU.

Written against the TensorRT 10 Python API (``tensorrt``), imported only inside the functions that need it. An
engine is tied to the GPU model and the TensorRT version that built it, so each plan carries a sidecar
(``model.plan.json``) naming both, plus precision, profiles and the ONNX file's sha256; a repository is only
assembled from a plan whose sidecar matches the GPU it will run on.

Cache layout (``--cache-dir``)::

    <cache>/<gpu-product>/trt-<version>/<onnx sha256[:16]>-<precision>.plan (+ .json)
    <cache>/<gpu-product>/trt-<version>/timing.cache      (shared by every build on that GPU + TensorRT)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import ExportError, require
from export.pipeline import DEFAULT_CACHE_DIR
from export.spec import ModelSpec

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str

    @property
    def product(self) -> str:
        """A path- and label-safe GPU product name, as GPU Feature Discovery writes ``nvidia.com/gpu.product``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name.strip()).strip("-")


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    workspace_bytes: int = 4 << 30
    progress: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ExportError(f"Unknown precision `{self.precision}`. Available: {', '.join(PRECISIONS)}.")
        if self.workspace_bytes < (64 << 20):
            raise ExportError(f"Workspace of {self.workspace_bytes} bytes is too small: use at least 64 MiB.")


@dataclass(frozen=True)
class Sidecar:
    """What an engine was built from and for."""

    model: str
    tensorrt_version: str
    gpu_name: str
    gpu_product: str
    compute_capability: str
    precision: str
    profiles: dict
    onnx_sha256: str
    built_at: str = ""
    build_seconds: float = 0.0

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        if not path.is_file():
            raise ExportError(f"No sidecar {path}: the engine's GPU and TensorRT version are unknown. Rebuild it "
                              "with `python -m export build-engine`.")
        try:
            return cls(**json.loads(path.read_text()))
        except (TypeError, ValueError) as exc:
            raise ExportError(f"Sidecar {path} is unreadable: {exc}") from None

    def mismatch(self, gpu: GpuInfo, tensorrt_version: str | None = None) -> str | None:
        """Why this engine cannot run on ``gpu`` (with ``tensorrt_version``), or None when it can."""
        problems = []
        if self.gpu_product != gpu.product:
            problems.append(f"built for {self.gpu_name}, this GPU is {gpu.name}")
        if self.compute_capability != gpu.compute_capability:
            problems.append(f"compute capability {self.compute_capability} vs {gpu.compute_capability}")
        if tensorrt_version and self.tensorrt_version != tensorrt_version:
            problems.append(f"TensorRT {self.tensorrt_version} vs {tensorrt_version}")
        return "; ".join(problems) or None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(plan: Path) -> Path:
    return plan.with_name(plan.name + ".json")


def detect_gpu() -> GpuInfo:
    """Name and compute capability of GPU 0 (nvidia-smi, else torch.cuda); an error on a machine without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.strip().splitlines()
        if out:
            name, cc = (part.strip() for part in out[0].split(","))
            return GpuInfo(name, cc)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return GpuInfo(torch.cuda.get_device_name(0), f"{major}.{minor}")
    except ImportError:
        pass
    raise ExportError("No NVIDIA GPU visible (nvidia-smi and torch.cuda found none): TensorRT engines are built "
                      "on the GPU they will run on.")


def profiles_for(spec: ModelSpec) -> dict[str, dict[str, list[int]]]:
    """Optimisation profile shapes for every input, from the spec's (min, opt, max) batch."""
    low, opt, high = spec.batch_profile
    return {t.name: {"min": [low, *t.dims], "opt": [opt, *t.dims], "max": [high, *t.dims]} for t in spec.inputs}


def spec_from_onnx(onnx_path: Path) -> ModelSpec:
    """The spec that ``python -m export`` stored in the ONNX file's metadata."""
    onnx = require("onnx")
    model = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if "segserve.spec" not in props:
        raise ExportError(f"{onnx_path} carries no segserve spec: export it with `python -m export`.")
    return ModelSpec.from_json(props["segserve.spec"])


def cache_paths(cache_dir: Path, gpu: GpuInfo, tensorrt_version: str, onnx_sha: str,
                precision: str) -> tuple[Path, Path]:
    """(plan path, timing cache path) inside ``cache_dir`` for this GPU + TensorRT + ONNX + precision."""
    folder = cache_dir / gpu.product / f"trt-{tensorrt_version}"
    return folder / f"{onnx_sha[:16]}-{precision}.plan", folder / "timing.cache"


@dataclass(frozen=True)
class EngineBuild:
    plan_path: Path
    sidecar: Sidecar
    cached: bool


def build_engine(onnx_path: Path, *, spec: ModelSpec | None = None, options: BuildOptions = BuildOptions(),
                 cache_dir: Path = DEFAULT_CACHE_DIR, plan_path: Path | None = None) -> EngineBuild:
    """Build (or reuse from ``cache_dir``) the engine for ``onnx_path`` on this GPU; copy it to ``plan_path``."""
    trt = require("tensorrt", "tensorrt-cu12", extra="tensorrt")
    spec = spec or spec_from_onnx(onnx_path)
    gpu = detect_gpu()
    onnx_sha = sha256(onnx_path)
    cached_plan, timing_cache = cache_paths(cache_dir, gpu, trt.__version__, onnx_sha, options.precision)
    if cached_plan.is_file() and sidecar_path(cached_plan).is_file():
        sidecar = Sidecar.read(sidecar_path(cached_plan))
        if sidecar.onnx_sha256 == onnx_sha and not sidecar.mismatch(gpu, trt.__version__):
            log.info("engine cache hit for %s on %s (TensorRT %s): %s", spec.name, gpu.name, trt.__version__,
                     cached_plan)
            return EngineBuild(_deliver(cached_plan, plan_path), sidecar, cached=True)
    log.info("building %s engine for %s: TensorRT %s, GPU %s (compute capability %s)", options.precision,
             spec.name, trt.__version__, gpu.name, gpu.compute_capability)
    started = time.perf_counter()
    serialized = _build_serialized(trt, onnx_path, spec, options, timing_cache)
    cached_plan.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached_plan.with_suffix(".plan.tmp")
    tmp.write_bytes(serialized)
    tmp.replace(cached_plan)
    sidecar = Sidecar(
        model=spec.name, tensorrt_version=trt.__version__, gpu_name=gpu.name, gpu_product=gpu.product,
        compute_capability=gpu.compute_capability, precision=options.precision, profiles=profiles_for(spec),
        onnx_sha256=onnx_sha, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        build_seconds=round(time.perf_counter() - started, 1))
    sidecar.write(sidecar_path(cached_plan))
    log.info("built %s in %.0f s (%.1f MB)", cached_plan, sidecar.build_seconds, len(serialized) / 1e6)
    return EngineBuild(_deliver(cached_plan, plan_path), sidecar, cached=False)


def _deliver(cached: Path, plan_path: Path | None) -> Path:
    if plan_path is None or plan_path.resolve() == cached.resolve():
        return cached
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, plan_path)
    shutil.copyfile(sidecar_path(cached), sidecar_path(plan_path))
    return plan_path


def _build_serialized(trt, onnx_path: Path, spec: ModelSpec, options: BuildOptions, timing_cache: Path) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")  # RoiAlign and NMS import through TensorRT's plugins
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = pin_fp32_layers(trt, network, spec, onnx_path)
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            log.info("kept %d layers in FP32: %s", len(pinned), ", ".join(pinned[:8]) + (" ..." if len(pinned) > 8
                                                                                          else ""))
    profile = builder.create_optimization_profile()
    for name, shapes in profiles_for(spec).items():
        profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if options.progress:
        config.progress_monitor = _progress_monitor(trt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build an engine for `{spec.name}` (see the log above).")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return bytes(memoryview(serialized))


def pin_fp32_layers(trt, network, spec: ModelSpec, onnx_path: Path) -> list[str]:
    """Keep numerically sensitive layers in FP32: the input normalisation (every layer from the network input to
    the first convolution) and the layers whose ONNX op type the spec lists (Softmax, ArgMax, ...)."""
    onnx = require("onnx")
    op_of = {n.name: n.op_type for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}
    sensitive = {name for name, op in op_of.items() if op in spec.fp32_op_types}
    float_types = (trt.float32, trt.float16)
    from_input = {network.get_input(i).name for i in range(network.num_inputs)}
    pinned = []
    before_first_conv = True
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type == trt.LayerType.CONVOLUTION:
            before_first_conv = False
        inputs = {layer.get_input(i).name for i in range(layer.num_inputs) if layer.get_input(i) is not None}
        normalisation = before_first_conv and inputs & from_input
        onnx_node = next((n for n in sensitive if layer.name == n or layer.name.startswith(n + "_")), None)
        if not (normalisation or onnx_node):
            continue
        if normalisation:
            from_input.update(layer.get_output(i).name for i in range(layer.num_outputs))
        layer.precision = trt.float32
        for i in range(layer.num_outputs):
            if layer.get_output(i).dtype in float_types:
                layer.set_output_type(i, trt.float32)
        pinned.append(layer.name)
    return pinned


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


def check_plan_for_gpu(plan_path: Path, gpu: GpuInfo | None = None) -> Sidecar:
    """The plan's sidecar, after checking it matches ``gpu`` (default: this machine's GPU 0)."""
    sidecar = Sidecar.read(sidecar_path(plan_path))
    gpu = gpu or detect_gpu()
    problem = sidecar.mismatch(gpu)
    if problem:
        raise ExportError(f"Engine {plan_path} cannot serve on this GPU: {problem}. Rebuild it here with "
                          f"`python -m export build-engine --onnx MODEL.onnx --plan {plan_path}`.")
    return sidecar


def run_engine(plan_path: Path, spec: ModelSpec, batches: list) -> list[dict]:
    """Run a plan on uint8 batches with Polygraphy's TrtRunner (engine deserialised once); outputs keyed by the
    spec's names, one dict per batch."""
    require("tensorrt", "tensorrt-cu12", extra="tensorrt")
    from polygraphy.backend.common import BytesFromPath
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    results = []
    with TrtRunner(EngineFromBytes(BytesFromPath(str(plan_path)))) as runner:
        for images in batches:
            outputs = runner.infer(feed_dict={spec.image.name: images})
            results.append({name: outputs[name] for name in spec.output_names})
    return results
