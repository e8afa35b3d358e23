"""One frozen spec per model: the single source of truth.

The ONNX export, the TensorRT optimisation profiles, every ``config.pbtxt`` and (through the served config) the
client all read these objects; none of them restates a tensor name, dtype, size or class list.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Literal

import numpy as np

from export.classes import COCO_CLASSES, VOC_CLASSES, generic_classes
from export.errors import ExportError

Task = Literal["semantic", "instance"]

# Triton data type (without the TYPE_ prefix) -> numpy dtype.
TRITON_DTYPES: dict[str, np.dtype] = {
    "UINT8": np.dtype(np.uint8),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
}

# Square input sizes a spec may take: multiples of 32 (the encoders' total stride); 2048 px is 12 MiB of uint8 per
# image and already several GiB of activations at export time.
MIN_SIZE, MAX_SIZE = 64, 2048

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# An imported one-channel foreground map (the built-in u2netp, `python -m export import`): its two classes, and the
# wrapper's numerically sensitive ops, kept FP32 in an FP16 build besides the input normalisation.
FOREGROUND_CLASSES = ("background", "foreground")
IMPORTED_FP32_OPS = ("Softmax", "ArgMax", "ReduceMean", "Sigmoid", "ReduceMin", "ReduceMax")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output, as Triton sees it: ``dims`` exclude the batch dimension."""

    name: str
    dtype: str
    dims: tuple[int, ...]

    @classmethod
    def from_config(cls, tensor: dict) -> TensorSpec:
        """An input or output of a served model config (Triton's JSON form: ``TYPE_`` data types); the data type is
        not checked here (callers differ in what they do with an unknown one)."""
        return cls(tensor.get("name", ""), tensor.get("data_type", "").removeprefix("TYPE_"),
                   tuple(int(d) for d in tensor.get("dims", [])))

    @property
    def np_dtype(self) -> np.dtype:
        return TRITON_DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        """Bytes of one batch item of this tensor."""
        return int(np.prod(self.dims)) * self.np_dtype.itemsize


@dataclass(frozen=True)
class ModelSpec:
    """Everything about one served model that more than one stage needs."""

    name: str
    task: Task
    architecture: str
    height: int
    width: int
    class_names: tuple[str, ...]
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 2000
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    # Instance segmentation only.
    max_detections: int = 0
    score_threshold: float = 0.05
    mask_resolution: int = 28
    # Proposals kept per FPN level before NMS, and in all after it (torchvision's test-time defaults).
    rpn_pre_nms_top_n: int = 1000
    rpn_post_nms_top_n: int = 1000
    # Semantic segmentation only: also emit float16 softmax probabilities.
    with_probs: bool = False
    # ONNX op types the FP16 graph pass (export.precision.convert_to_fp16) never runs in FP16, on top of its own
    # rules (which already keep these defaults, the input normalisation and the heads before them in FP32).
    fp32_op_types: tuple[str, ...] = ("Softmax", "ArgMax", "ReduceMean")
    opset: int = 18
    # Imported ONNX networks (export/importer): how the network's score map becomes MASK. "scores": [N, C, H, W]
    # per-class scores -> ArgMax; "foreground": one [N, 1, H, W] map -> MASK = map > foreground_threshold (after a
    # sigmoid when the map is logits and, with minmax, stretched to [0, 1] per image as rembg does).
    output_kind: str = "scores"
    scores_are: str = "logits"
    foreground_threshold: float = 0.5
    minmax: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image(self) -> TensorSpec:
        return TensorSpec("IMAGE", "UINT8", (self.height, self.width, 3))

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return (self.image,)

    @property
    def mask_dtype(self) -> str:
        """Class ids fit a byte for up to 256 classes; larger label sets need int32."""
        return "UINT8" if self.num_classes <= 256 else "INT32"

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        if self.task == "semantic":
            outs = [TensorSpec("MASK", self.mask_dtype, (self.height, self.width))]
            if self.with_probs:
                outs.append(TensorSpec("PROBS", "FP16", (self.num_classes, self.height, self.width)))
            return tuple(outs)
        d, r = self.max_detections, self.mask_resolution
        return (
            TensorSpec("BOXES", "FP32", (d, 4)),
            TensorSpec("SCORES", "FP32", (d,)),
            TensorSpec("LABELS", "INT32", (d,)),
            TensorSpec("MASKS", "FP16", (d, r, r)),
            TensorSpec("NUM_DETECTIONS", "INT32", (1,)),
        )

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def batch_profile(self) -> tuple[int, int, int]:
        """(min, opt, max) batch for TensorRT optimisation profiles: opt is the largest preferred batch size."""
        opt = max(self.preferred_batch_sizes, default=1)
        return (1, min(opt, self.max_batch_size), self.max_batch_size)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        """The inverse of ``to_json`` (lists back to tuples); unknown keys are an error, not silently dropped."""
        raw = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - fields
        if unknown:
            raise ExportError(f"Unknown spec fields {sorted(unknown)}: the ONNX file comes from a newer segserve.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    def with_options(
        self,
        *,
        size: int | tuple[int, int] | None = None,
        num_classes: int | None = None,
        probs: bool | None = None,
        max_detections: int | None = None,
        score_threshold: float | None = None,
        max_batch_size: int | None = None,
    ) -> ModelSpec:
        """A copy with user overrides, validated: every derived stage then sees the same values."""
        changes: dict = {}
        if size is not None:
            h, w = (size, size) if isinstance(size, int) else size
            for value in (h, w):
                if isinstance(value, bool) or not isinstance(value, int) or not MIN_SIZE <= value <= MAX_SIZE \
                        or value % 32:
                    raise ExportError(f"Bad size {value} for `{self.name}`: use a multiple of 32 in "
                                      f"{MIN_SIZE}..{MAX_SIZE}.")
            changes.update(height=h, width=w)
        if num_classes is not None:
            if self.task != "semantic" or self.name != "unet":
                raise ExportError(f"`{self.name}` has a fixed class list ({self.num_classes} classes); "
                                  "--num-classes applies to unet only.")
            if not 2 <= num_classes <= 65535:
                raise ExportError(f"Bad class count {num_classes}: use 2..65535.")
            changes["class_names"] = VOC_CLASSES if num_classes == len(VOC_CLASSES) else generic_classes(num_classes)
        if probs:
            if self.task != "semantic":
                raise ExportError(f"--probs applies to semantic models; `{self.name}` is {self.task}.")
            changes["with_probs"] = True
        if max_detections is not None:
            if self.task != "instance" or not 1 <= max_detections <= 1000:
                raise ExportError(f"Bad max detections {max_detections} for `{self.name}`: "
                                  "an instance model takes 1..1000.")
            changes["max_detections"] = max_detections
        if score_threshold is not None:
            if self.task != "instance" or not 0.0 <= score_threshold < 1.0:
                raise ExportError(f"Bad score threshold {score_threshold} for `{self.name}`: "
                                  "an instance model takes 0 <= t < 1.")
            changes["score_threshold"] = score_threshold
        if max_batch_size is not None:
            if not 1 <= max_batch_size <= 256:
                raise ExportError(f"Bad max batch size {max_batch_size}: use 1..256.")
            prefs = tuple(b for b in self.preferred_batch_sizes if b <= max_batch_size)
            if not prefs and max_batch_size > 1:
                prefs = (max_batch_size,)
            changes.update(max_batch_size=max_batch_size, preferred_batch_sizes=prefs)
        return dataclasses.replace(self, **changes)


SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="unet",
            task="semantic",
            architecture="segmentation_models_pytorch Unet, resnet34 encoder",
            height=512,
            width=512,
            class_names=VOC_CLASSES,
            max_batch_size=8,
            preferred_batch_sizes=(4, 8),
        ),
        ModelSpec(
            name="deeplabv3",
            task="semantic",
            architecture="torchvision deeplabv3_resnet50",
            height=520,
            width=520,
            class_names=VOC_CLASSES,
            max_batch_size=8,
            preferred_batch_sizes=(4, 8),
        ),
        ModelSpec(
            name="deeplabv3_mobilenet",
            task="semantic",
            architecture="torchvision deeplabv3_mobilenet_v3_large",
            height=520,
            width=520,
            class_names=VOC_CLASSES,
            max_batch_size=16,
            preferred_batch_sizes=(8, 16),
        ),
        ModelSpec(
            name="maskrcnn",
            task="instance",
            architecture="torchvision maskrcnn_resnet50_fpn (inference core: backbone, RPN, RoI heads)",
            height=800,
            width=800,
            class_names=COCO_CLASSES,
            # Batched core (export/maskrcnn): every image independent, so the dynamic batcher may merge requests.
            # TensorRT profile 1/4/8 (opt = the largest preferred size).
            max_batch_size=8,
            preferred_batch_sizes=(4,),
            max_detections=100,
        ),
        # A real trained network: rembg's U²-Net-p, imported from its ONNX file (export/importer/builtin.py).
        ModelSpec(
            name="u2netp",
            task="semantic",
            architecture="U2-Net-p salient-object segmenter (rembg u2netp.onnx, imported)",
            height=320,
            width=320,
            class_names=FOREGROUND_CLASSES,
            max_batch_size=4,
            preferred_batch_sizes=(4,),
            fp32_op_types=IMPORTED_FP32_OPS,
            opset=11,
            output_kind="foreground",
            scores_are="probabilities",
            minmax=True,
        ),
    )
}


# One model per family, DeepLabV3 in its CPU-friendly MobileNet form, and the trained u2netp: what `make demo` and
# `make serve` export.
DEMO_MODELS = ("deeplabv3_mobilenet", "unet", "maskrcnn", "u2netp")


def get_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; an unknown name lists the valid ones."""
    try:
        return SPECS[name]
    except KeyError:
        raise ExportError(f"Unknown model `{name}`. Available: {', '.join(sorted(SPECS))}.") from None
