"""Mask R-CNN, batched: torchvision's ``maskrcnn_resnet50_fpn`` inference core for Triton's dynamic batcher.

torchvision's full ``MaskRCNN`` resizes inside the graph (``GeneralizedRCNNTransform``) and pastes every mask into a
full-resolution float image (256 MB per image at 100 detections, via a Loop TensorRT rejects). The served core runs
``backbone -> RPN -> RoI heads`` on images already at the model size (the client letterboxes), keeps normalisation in
the graph and returns fixed-size, zero-padded outputs for a dynamic batch B:

    BOXES [B, D, 4] float32 (x1, y1, x2, y2 in model-input pixels), SCORES [B, D] float32, LABELS [B, D] int32,
    MASKS [B, D, 28, 28] float16 mask probabilities in box coordinates, NUM_DETECTIONS [B, 1] int32.

- ``core``: the batched module (every image independent: per-image, per-level and per-class NMS);
- ``nms``: grouped NMS, exported as ONNX NonMaxSuppression with groups on its batch axis (no coordinate offsets);
- ``reference``: torchvision's own modules one image at a time, the answer the core must reproduce.
"""

from export.maskrcnn.core import MaskRCNNCore

__all__ = ["MaskRCNNCore"]
