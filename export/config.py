"""config.pbtxt generation: built from the spec as a ``ModelConfig`` protobuf, never written by hand.

Targets (same model name, tensor names, dtypes and dims on each, so a client cannot tell them apart):

- ``onnxruntime``: Triton's native ONNX Runtime backend; CPU or GPU instances, optionally with the TensorRT
  execution accelerator in FP16 (engines built by Triton at load time, no prebuild step);
- ``tensorrt``: ``platform: "tensorrt_plan"`` serving a prebuilt FP16 ``model.plan`` on GPU instances;
- ``local``: Triton's python backend running the same ONNX file with ONNX Runtime, for the pip-installed CPU
  ``tritonserver`` (which carries no onnxruntime backend).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from export.errors import ExportError
from export.layout import ARTIFACTS, LABELS_FILE, ORT_TRT_CACHE_DIR
from export.spec import ModelSpec

if TYPE_CHECKING:
    from tritonclient.grpc import model_config_pb2

TARGETS = ("onnxruntime", "tensorrt", "local")
DEVICES = ("gpu", "cpu")


@dataclass(frozen=True)
class ServingOptions:
    """How a model is served, beyond what the spec fixes."""

    target: str
    device: str = "gpu"
    instances: int = 1
    trt_accelerator: bool = False  # onnxruntime target on GPU: TensorRT execution accelerator, FP16
    trt_workspace_bytes: int = 1 << 30

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ExportError(f"Unknown target `{self.target}`. Available: {', '.join(TARGETS)}.")
        if self.device not in DEVICES:
            raise ExportError(f"Unknown device `{self.device}`. Available: {', '.join(DEVICES)}.")
        if self.target == "tensorrt" and self.device != "gpu":
            raise ExportError("The tensorrt target runs on GPU only; use --target onnxruntime --device cpu.")
        if self.target == "local" and self.device != "cpu":
            raise ExportError("The local target is the CPU python backend; it takes --device cpu.")
        if self.trt_accelerator and (self.target != "onnxruntime" or self.device != "gpu"):
            raise ExportError("--trt-accelerator applies to --target onnxruntime --device gpu only.")
        if self.instances < 1:
            raise ExportError(f"Bad instance count {self.instances}: use 1 or more.")

    @classmethod
    def for_target(cls, target: str, **kwargs) -> ServingOptions:
        kwargs.setdefault("device", "cpu" if target == "local" else "gpu")
        return cls(target=target, **kwargs)


def _tensor(t, label_file: bool = False) -> dict:
    entry = {"name": t.name, "data_type": f"TYPE_{t.dtype}", "dims": list(t.dims)}
    if label_file:
        entry["label_filename"] = LABELS_FILE
    return entry


# Dynamic batching differs per device. A GPU runs a batch of 8 in little more than the time of one image, so the
# spec's queue delay (a couple of milliseconds spent waiting for the preferred batch) buys throughput. On CPU cores a
# batch costs as much per image as single requests (docs/performance.md: in-process ONNX Runtime at batch 2 vs 1 is
# within the noise for every model on 2 cores), so any wait is pure latency at low load: the CPU batcher only groups
# requests that are already queued (no delay; 0 is also what Triton assumes when the field is absent).
CPU_MAX_QUEUE_DELAY_US = 0


def queue_delay_us(spec: ModelSpec, options: ServingOptions) -> int:
    """The dynamic batcher's max queue delay for ``spec`` served on ``options.device``."""
    return spec.max_queue_delay_us if options.device == "gpu" else CPU_MAX_QUEUE_DELAY_US


def config_dict(spec: ModelSpec, options: ServingOptions) -> dict:
    """The model configuration as a dict in protobuf JSON field names."""
    labelled = {"MASK", "LABELS"}  # outputs that carry class ids
    config: dict = {
        "name": spec.name,
        "max_batch_size": spec.max_batch_size,
        "input": [_tensor(t) for t in spec.inputs],
        "output": [_tensor(t, t.name in labelled) for t in spec.outputs],
        "instance_group": [{"count": options.instances, "kind": f"KIND_{options.device.upper()}"}],
        "parameters": {
            key: {"string_value": value}
            for key, value in {
                "segserve.task": spec.task,
                "segserve.architecture": spec.architecture,
                "segserve.class_names": json.dumps(list(spec.class_names)),
                "segserve.input_layout": "NHWC RGB uint8, letterboxed to the input size",
            }.items()
        },
    }
    if spec.task == "instance":
        config["parameters"]["segserve.score_threshold"] = {"string_value": f"{spec.score_threshold:g}"}
    if options.target == "tensorrt":
        config["platform"] = "tensorrt_plan"
    elif options.target == "onnxruntime":
        config["backend"] = "onnxruntime"
        config["default_model_filename"] = ARTIFACTS["onnxruntime"]
    else:
        config["backend"] = "python"
    if spec.max_batch_size > 1:
        config["dynamic_batching"] = {
            "preferred_batch_size": list(spec.preferred_batch_sizes),
            "max_queue_delay_microseconds": queue_delay_us(spec, options),
        }
    if options.trt_accelerator:
        config["optimization"] = {"execution_accelerators": {"gpu_execution_accelerator": [
            {"name": "tensorrt", "parameters": ort_tensorrt_parameters(spec, options)}]}}
    if options.device == "gpu":
        config["model_warmup"] = warmup(spec)
    return config


def _shapes(spec: ModelSpec, batch: int) -> str:
    return ",".join(f"{t.name}:{'x'.join(map(str, (batch, *t.dims)))}" for t in spec.inputs)


def ort_tensorrt_parameters(spec: ModelSpec, options: ServingOptions) -> dict[str, str]:
    """ONNX Runtime's TensorRT execution provider, as Triton's onnxruntime backend passes it (parameter names and the
    ``NAME:d0xd1...`` shape syntax: onnxruntime_backend README.md "Parameter mapping" table and src/onnxruntime.cc,
    main at 00fd3e8, 2026-06). Explicit profiles from the spec (min 1, opt = largest preferred batch, max = max
    batch) stop the provider from rebuilding its engine whenever dynamic batching forms a larger batch; the engine
    and timing caches live on the persistent path the chart mounts (``ORT_TRT_CACHE_DIR``), not in the container."""
    low, opt, high = spec.batch_profile
    # precision_mode FP16 (the provider's trt_fp16_enable): on a weakly typed TensorRT 10 network it is what lets the
    # graph's FP16 layers run in FP16 (without it TensorRT before 10.12 ran every layer FP32: Torch-TensorRT's
    # user_guide/mixed_precision "Explicit Typing"); it also lets TensorRT 10 pick FP16 for the graph's FP32 islands
    # where that is faster (not verifiable here). TensorRT 11 builds every network strongly typed ("All networks are
    # strongly typed": TensorRT 11.4.0 docs, inference-library/dla-strongly-typed-networks.html), so there the
    # graph's types decide, as in segserve's own engines.
    return {
        "precision_mode": "FP16",
        "max_workspace_size_bytes": str(options.trt_workspace_bytes),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": ORT_TRT_CACHE_DIR,
        "trt_timing_cache_enable": "1",
        "trt_timing_cache_path": ORT_TRT_CACHE_DIR,
        "trt_profile_min_shapes": _shapes(spec, low),
        "trt_profile_opt_shapes": _shapes(spec, opt),
        "trt_profile_max_shapes": _shapes(spec, high),
    }


def warmup(spec: ModelSpec) -> list[dict]:
    """``model_warmup`` samples (Triton model_config.proto ``ModelWarmup``): random images at batch 1 and at the
    largest batch, so engine builds, autotuning and CUDA initialisation happen at load time, not on the first user
    request (Triton marks the model ready only after its warmup ran)."""
    sizes = sorted({1, spec.max_batch_size})
    return [{"name": f"random_batch_{b}", "batch_size": b,
             "inputs": {t.name: {"data_type": f"TYPE_{t.dtype}", "dims": list(t.dims), "random_data": True}
                        for t in spec.inputs}} for b in sizes]


def config_proto(spec: ModelSpec, options: ServingOptions) -> "model_config_pb2.ModelConfig":
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2

    return json_format.ParseDict(config_dict(spec, options), model_config_pb2.ModelConfig())


def render_config(spec: ModelSpec, options: ServingOptions) -> str:
    """config.pbtxt text for ``spec`` served as ``options`` say."""
    from google.protobuf import text_format

    header = (f"# Generated by `python -m export` from the `{spec.name}` spec (target {options.target}). "
              "Do not edit: re-export instead.\n")
    return header + text_format.MessageToString(config_proto(spec, options))


def parse_config(text: str) -> "model_config_pb2.ModelConfig":
    """Parse config.pbtxt text (for golden comparisons and repository checks)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())
