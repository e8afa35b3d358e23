"""Mask R-CNN inference core: the part of torchvision's model worth exporting.

torchvision's full ``MaskRCNN`` resizes inside the graph (``GeneralizedRCNNTransform``) and pastes every mask into a
full-resolution float image (256 MB per image at 100 detections, via a Loop TensorRT rejects). The core here calls
``backbone -> rpn -> roi_heads`` directly on an image already at the model size (the client letterboxes), keeps
normalisation in the graph and returns fixed-size, zero-padded outputs:

    BOXES [1, D, 4] float32 (x1, y1, x2, y2 in model-input pixels), SCORES [1, D] float32, LABELS [1, D] int32,
    MASKS [1, D, 28, 28] float16 mask probabilities in box coordinates, NUM_DETECTIONS [1, 1] int32.

Fixed-size outputs keep the Triton config static and let zero detections travel as ``NUM_DETECTIONS = 0``.
torchvision's ``batched_nms`` branches on the box count (a data-dependent guard that the dynamo exporter rejects);
``offset_batched_nms`` is the same coordinate trick without the branch, valid because boxes are clipped to the image.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

from export.normalise import image_normaliser
from export.spec import ModelSpec

if TYPE_CHECKING:
    import torch


def offset_batched_nms(boxes: "torch.Tensor", scores: "torch.Tensor", idxs: "torch.Tensor",
                       iou_threshold: float) -> "torch.Tensor":
    """Per-class NMS in one NMS call: shift each class's boxes far apart (boxes lie inside the image)."""
    import torch
    from torchvision.ops import nms

    offset = 1.0e4  # larger than any image side the spec allows
    shifted = boxes + (idxs.to(boxes.dtype) * offset)[:, None]
    keep = nms(shifted, scores, iou_threshold)
    return keep.to(torch.int64)


@contextlib.contextmanager
def branch_free_nms() -> Iterator[None]:
    """Swap torchvision's batched_nms for ``offset_batched_nms`` while the core runs or is exported."""
    from torchvision.ops import boxes as box_ops

    original = box_ops.batched_nms
    box_ops.batched_nms = offset_batched_nms
    try:
        yield
    finally:
        box_ops.batched_nms = original


def _core_class():
    import torch
    from torchvision.models.detection.image_list import ImageList

    class MaskRCNNCore(torch.nn.Module):
        def __init__(self, model: torch.nn.Module, spec: ModelSpec) -> None:
            super().__init__()
            self.backbone = model.backbone
            self.rpn = model.rpn
            self.roi_heads = model.roi_heads
            self.roi_heads.score_thresh = spec.score_threshold
            self.roi_heads.detections_per_img = spec.max_detections
            self.size = (spec.height, spec.width)
            self.max_detections = spec.max_detections
            self.normalise = image_normaliser(spec)

        def forward(self, image: torch.Tensor):
            x = self.normalise(image)
            images = ImageList(x, [self.size])
            with branch_free_nms():
                features = self.backbone(x)
                proposals, _ = self.rpn(images, features)
                detections, _ = self.roi_heads(features, proposals, images.image_sizes)
            det = detections[0]
            d = self.max_detections
            boxes, scores, labels, masks = det["boxes"], det["scores"], det["labels"], det["masks"][:, 0]
            # Float sums and float padding, cast at the end: TensorRT's ReduceSum and ConstantOfShape are float-only.
            count = torch.ones_like(scores).sum().to(torch.int32).reshape(1, 1)
            # Pad to D rows: concatenate D zero rows, keep the first D (Concat + Slice: TensorRT-friendly).
            boxes = torch.cat([boxes, boxes.new_zeros(d, 4)])[:d]
            scores = torch.cat([scores, scores.new_zeros(d)])[:d]
            labels = torch.cat([labels.to(torch.float32), scores.new_zeros(d)])[:d].to(torch.int32)
            masks = torch.cat([masks, masks.new_zeros(d, *masks.shape[1:])])[:d].to(torch.float16)
            return boxes[None], scores[None], labels[None], masks[None], count

    return MaskRCNNCore


def MaskRCNNCore(model: "torch.nn.Module", spec: ModelSpec) -> "torch.nn.Module":  # noqa: N802 (a factory)
    return _core_class()(model, spec)
