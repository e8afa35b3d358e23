"""The batched Mask R-CNN inference core: torchvision's weights and arithmetic, every image independent.

torchvision's RPN and RoI heads loop over the images of a batch in Python (a loop ``torch.export`` unrolls to the
example batch) and run NMS on lists of per-image tensors. This core does the same arithmetic as whole-batch tensor
operations with fixed shapes, so one graph serves any batch from 1 to the spec's maximum:

- RPN: objectness top-k per image and per FPN level, boxes decoded and clipped, then NMS per (image, level) group;
  the best ``rpn_post_nms_top_n`` survivors per image become its proposals (a padded, masked ``[B, P]`` set).
- RoIAlign: proposals of all images in one RoI list with each image's batch index, each RoI on its FPN level.
- Detections: per-class boxes and softmax scores, NMS per (image, class) group, the best D per image.
- Masks: the mask head on the detections found (all images' in one RoI list); the detected class's mask, FP16.

Masking (a score of ``MASKED_SCORE``) replaces every data-dependent filter, so values stay small: coordinates within
the image, scores in [-1, 1], no offsets (FP16-safe).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from export.maskrcnn.nms import MASKED_SCORE, SCORE_FLOOR, grouped_nms
from export.normalise import image_normaliser
from export.spec import ModelSpec

if TYPE_CHECKING:
    import torch


def _pad_to(x: "torch.Tensor", size: int, dim: int, value: float) -> "torch.Tensor":
    """``x`` padded with ``value`` along ``dim`` to ``size`` (a static size known at export)."""
    import torch

    missing = size - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x, torch.full(shape, value, dtype=x.dtype, device=x.device)], dim=dim)


def fpn_levels(boxes: "torch.Tensor", k_min: int, k_max: int, canonical_scale: float = 224.0,
               canonical_level: int = 4, eps: float = 1e-6) -> "torch.Tensor":
    """FPN level index (0-based from ``k_min``) of each box: torchvision's ``LevelMapper`` (FPN paper eqn. 1),
    written as ``log2(sqrt((w/s0) * (h/s0)))`` so the area never exceeds FP16's range (800x800 is 640,000)."""
    import torch

    w = (boxes[..., 2] - boxes[..., 0]) / canonical_scale
    h = (boxes[..., 3] - boxes[..., 1]) / canonical_scale
    level = torch.floor(canonical_level + torch.log2(torch.sqrt(w * h)) + eps)
    return (torch.clamp(level, min=k_min, max=k_max) - k_min).to(torch.int64)


def multiscale_roi_align(pooler, features: dict, boxes: "torch.Tensor", image_index: "torch.Tensor",
                         image_size: tuple[int, int]) -> "torch.Tensor":
    """torchvision's ``MultiScaleRoIAlign`` for RoIs of several images: ``boxes [K, 4]``, each with the batch index
    of its image in ``image_index [K]``. Returns ``[K, C, h, w]``."""
    import torch
    from torchvision.ops import roi_align

    maps = [features[name] for name in pooler.featmap_names]
    # Scales as torchvision infers them: 2 ** round(log2(feature size / image size)), static at export.
    scales = [2.0 ** round(math.log2(m.shape[-2] / image_size[0])) for m in maps]
    k_min, k_max = round(-math.log2(scales[0])), round(-math.log2(scales[-1]))
    rois = torch.cat([image_index.to(boxes.dtype)[:, None], boxes], dim=1)
    levels = fpn_levels(boxes, k_min, k_max, pooler.canonical_scale, pooler.canonical_level)
    out = torch.zeros((boxes.shape[0], maps[0].shape[1], *pooler.output_size), dtype=maps[0].dtype,
                      device=boxes.device)
    for level, (feature, scale) in enumerate(zip(maps, scales)):
        index = torch.where(levels == level)[0]
        pooled = roi_align(feature, rois[index], output_size=pooler.output_size, spatial_scale=scale,
                           sampling_ratio=pooler.sampling_ratio)
        out = out.index_put((index,), pooled)
    return out


def _core_class():
    import torch
    import torch.nn.functional as F
    from torchvision.models.detection.image_list import ImageList
    from torchvision.models.detection.rpn import concat_box_prediction_layers
    from torchvision.ops import boxes as box_ops

    class MaskRCNNCore(torch.nn.Module):
        """uint8 NHWC ``IMAGE [B, H, W, 3]`` -> ``BOXES [B, D, 4]``, ``SCORES [B, D]``, ``LABELS [B, D]`` int32,
        ``MASKS [B, D, r, r]`` fp16, ``NUM_DETECTIONS [B, 1]`` int32; rows past an image's count are zeros."""

        def __init__(self, model: torch.nn.Module, spec: ModelSpec) -> None:
            super().__init__()
            self.backbone = model.backbone
            self.rpn = model.rpn
            self.roi_heads = model.roi_heads
            self.roi_heads.score_thresh = spec.score_threshold
            self.roi_heads.detections_per_img = spec.max_detections
            self.size = (spec.height, spec.width)
            self.max_detections = spec.max_detections
            self.mask_resolution = spec.mask_resolution
            self.normalise = image_normaliser(spec)

        @staticmethod
        def onnx_translation_table() -> dict:
            from export.maskrcnn.nms import onnx_translation_table

            return onnx_translation_table()

        def forward(self, image: torch.Tensor):
            x = self.normalise(image)
            features = self.backbone(x)
            proposals, valid = self.propose(x, features)
            boxes, scores, labels, found = self.detect(features, proposals, valid)
            masks = self.segment(features, boxes, labels, found)
            count = found.to(torch.float32).sum(dim=1, keepdim=True).to(torch.int32)  # float sum: TensorRT
            boxes = torch.where(found[..., None], boxes, torch.zeros_like(boxes))
            scores = torch.where(found, scores, torch.zeros_like(scores))
            labels = torch.where(found, labels, torch.zeros_like(labels)).to(torch.int32)
            masks = masks.to(torch.float16)
            return boxes, scores, labels, masks, count

        def propose(self, x: torch.Tensor, features: dict) -> tuple[torch.Tensor, torch.Tensor]:
            """RPN: proposals ``[B, P, 4]`` and which of them are real ``[B, P]`` (torchvision's
            ``RegionProposalNetwork.forward`` + ``filter_proposals``, per image and per level)."""
            rpn = self.rpn
            maps = list(features.values())
            batch = x.shape[0]
            objectness, deltas = rpn.head(maps)
            # Anchors depend on the (static) image and feature sizes only: the same for every image.
            anchors = rpn.anchor_generator(ImageList(x[:1], [self.size]), maps)[0]
            per_level = [o.shape[1] * o.shape[2] * o.shape[3] for o in objectness]
            objectness, deltas = concat_box_prediction_layers(objectness, deltas)
            boxes = rpn.box_coder.decode_single(deltas, anchors.repeat(batch, 1)).reshape(batch, -1, 4)
            objectness = objectness.reshape(batch, -1)

            group = min(rpn.pre_nms_top_n(), max(per_level))
            level_boxes, level_scores, offset = [], [], 0
            for n in per_level:
                k = min(rpn.pre_nms_top_n(), n)
                top, index = objectness[:, offset:offset + n].topk(k, dim=1)
                picked = boxes[:, offset:offset + n].gather(1, index[..., None].expand(batch, k, 4))
                level_boxes.append(_pad_to(picked, group, 1, 0.0))
                level_scores.append(_pad_to(torch.sigmoid(top), group, 1, MASKED_SCORE))
                offset += n
            boxes = box_ops.clip_boxes_to_image(torch.stack(level_boxes, dim=1), self.size)  # [B, L, K, 4]
            scores = torch.stack(level_scores, dim=1)  # [B, L, K]
            width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
            usable = (scores >= rpn.score_thresh) & (width >= rpn.min_size) & (height >= rpn.min_size)
            scores = torch.where(usable, scores, torch.full_like(scores, MASKED_SCORE))
            levels = len(per_level)
            keep = grouped_nms(boxes.reshape(batch * levels, group, 4), scores.reshape(batch * levels, group),
                               rpn.nms_thresh, rpn.post_nms_top_n())
            scores = torch.where(keep.reshape(batch, levels, group), scores, torch.full_like(scores, MASKED_SCORE))
            total = levels * group
            top, index = scores.reshape(batch, total).topk(min(rpn.post_nms_top_n(), total), dim=1)
            proposals = boxes.reshape(batch, total, 4).gather(1, index[..., None].expand(-1, -1, 4))
            return proposals, top > SCORE_FLOOR

        def detect(self, features: dict, proposals: torch.Tensor, valid: torch.Tensor):
            """Box head: the best D detections per image ``(boxes, scores, labels, found)`` (torchvision's
            ``RoIHeads.postprocess_detections``, NMS per image and per class)."""
            heads = self.roi_heads
            batch, n = proposals.shape[:2]
            image_index = torch.arange(batch, device=proposals.device)[:, None].expand(batch, n).reshape(-1)
            pooled = multiscale_roi_align(heads.box_roi_pool, features, proposals.reshape(-1, 4), image_index,
                                          self.size)
            logits, regression = heads.box_predictor(heads.box_head(pooled))
            classes = logits.shape[-1]
            boxes = heads.box_coder.decode_single(regression, proposals.reshape(-1, 4)).reshape(batch, n, classes, 4)
            boxes = box_ops.clip_boxes_to_image(boxes, self.size)[:, :, 1:]  # drop the background class
            scores = F.softmax(logits, -1).reshape(batch, n, classes)[:, :, 1:]
            width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
            usable = valid[..., None] & (scores > heads.score_thresh) & (width >= 1e-2) & (height >= 1e-2)
            scores = torch.where(usable, scores, torch.full_like(scores, MASKED_SCORE))
            # Groups are (image, class): [B, C-1, N] boxes and scores.
            boxes = boxes.permute(0, 2, 1, 3)
            scores = scores.permute(0, 2, 1)
            groups = batch * (classes - 1)
            keep = grouped_nms(boxes.reshape(groups, n, 4), scores.reshape(groups, n), heads.nms_thresh,
                               self.max_detections)
            scores = torch.where(keep.reshape(batch, classes - 1, n), scores, torch.full_like(scores, MASKED_SCORE))
            total = (classes - 1) * n
            d = min(self.max_detections, total)
            top, index = scores.reshape(batch, total).topk(d, dim=1)
            picked = boxes.reshape(batch, total, 4).gather(1, index[..., None].expand(-1, -1, 4))
            labels = torch.div(index, n, rounding_mode="floor") + 1
            found = top > SCORE_FLOOR
            return (_pad_to(picked, self.max_detections, 1, 0.0), _pad_to(top, self.max_detections, 1, 0.0),
                    _pad_to(labels, self.max_detections, 1, 0), _pad_to(found, self.max_detections, 1, False))

        def segment(self, features: dict, boxes: torch.Tensor, labels: torch.Tensor,
                    found: torch.Tensor) -> torch.Tensor:
            """Mask head on the real detections of every image: ``[B, D, r, r]`` probabilities of the detected class,
            zeros in padding rows (torchvision's ``maskrcnn_inference``; sigmoid after picking the class, the same per
            element). Only found rows go through the head: it costs ~1 GFLOP per detection."""
            heads = self.roi_heads
            batch, d = boxes.shape[:2]
            rows = torch.where(found.reshape(-1))[0]
            pooled = multiscale_roi_align(heads.mask_roi_pool, features, boxes.reshape(-1, 4)[rows],
                                          torch.div(rows, d, rounding_mode="floor"), self.size)
            logits = heads.mask_predictor(heads.mask_head(pooled))
            size = logits.shape[-2:]
            index = labels.reshape(-1)[rows].reshape(-1, 1, 1, 1).expand(-1, 1, *size)
            probs = torch.sigmoid(logits.gather(1, index))[:, 0]
            masks = torch.zeros((batch * d, *size), dtype=probs.dtype, device=probs.device)
            return masks.index_put((rows,), probs).reshape(batch, d, *size)

    return MaskRCNNCore


def MaskRCNNCore(model: "torch.nn.Module", spec: ModelSpec) -> "torch.nn.Module":  # noqa: N802 (a factory)
    return _core_class()(model, spec)
