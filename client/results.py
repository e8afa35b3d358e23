"""Frozen result types at the image's original resolution, and model outputs -> results."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from client.errors import ClientError
from client.postprocess import (paste_full, paste_masks_compact, unletterbox_boxes, unletterbox_counts,
                                unletterbox_mask)
from client.preprocess import Letterbox


def _class_name(class_names: tuple[str, ...], class_id: int) -> str:
    return class_names[class_id] if 0 <= class_id < len(class_names) else f"class_{class_id}"


@dataclass(frozen=True)
class SegmentationResult:
    """Semantic segmentation of one image, at its original resolution."""

    mask: np.ndarray  # [H, W] class ids
    class_names: tuple[str, ...]
    latency_ms: float
    frames: int = 1  # frames/pages in the source file; only the first was segmented
    pixel_counts: np.ndarray | None = None  # [classes] pixels of each class in ``mask``, when known

    @property
    def classes(self) -> list[tuple[int, str, float]]:
        """(class id, name, fraction of pixels) for each class present, largest first."""
        if self.pixel_counts is not None:
            ids = np.flatnonzero(self.pixel_counts)
            counts = self.pixel_counts[ids]
        elif self.mask.dtype == np.uint8:
            counts = np.bincount(self.mask.ravel(), minlength=256)
            ids = np.flatnonzero(counts)
            counts = counts[ids]
        else:
            ids, counts = np.unique(self.mask, return_counts=True)
        total = self.mask.size
        found = [(int(i), self.name(int(i)), c / total) for i, c in zip(ids, counts)]
        return sorted(found, key=lambda item: -item[2])

    def name(self, class_id: int) -> str:
        return _class_name(self.class_names, class_id)


@dataclass(frozen=True)
class DetectionResult:
    """Instance segmentation of one image, in original image coordinates.

    Masks are compact: ``mask_crops[i]`` is instance i's boolean mask inside its (grown, clipped) box, with its
    top-left corner at ``mask_origins[i]`` = (x, y). ``full_mask(i)`` / ``full_masks()`` paste them into full
    frames on demand (``masks`` is ``full_masks()``: N x H x W bytes, 207 MB for 100 instances at 1080p)."""

    boxes: np.ndarray  # [N, 4] float32 (x1, y1, x2, y2)
    scores: np.ndarray  # [N] float32
    labels: np.ndarray  # [N] int32
    mask_crops: tuple[np.ndarray, ...]  # N x [h_i, w_i] bool
    mask_origins: np.ndarray  # [N, 2] int64 (x, y)
    image_size: tuple[int, int]  # (height, width)
    class_names: tuple[str, ...]
    latency_ms: float
    frames: int = 1

    @property
    def names(self) -> list[str]:
        return [_class_name(self.class_names, int(i)) for i in self.labels]

    def __len__(self) -> int:
        return len(self.scores)

    def full_mask(self, index: int) -> np.ndarray:
        """Instance ``index``'s mask as an [H, W] bool frame."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"instance {index} out of range: this result has {len(self)}")
        return paste_full([self.mask_crops[index]], self.mask_origins[[index]], *self.image_size)[0]

    def full_masks(self) -> np.ndarray:
        """Every mask as [N, H, W] bool frames (allocates N x H x W bytes)."""
        return paste_full(list(self.mask_crops), self.mask_origins, *self.image_size)

    @property
    def masks(self) -> np.ndarray:
        """``full_masks()``: pasted on each access; prefer ``mask_crops`` / ``full_mask(i)``."""
        return self.full_masks()

    @property
    def nbytes(self) -> int:
        """Memory held by this result's arrays."""
        arrays = (self.boxes, self.scores, self.labels, self.mask_origins, *self.mask_crops)
        return int(sum(a.nbytes for a in arrays))


def segmentation_from_outputs(outputs: dict[str, np.ndarray], box: Letterbox, class_names: tuple[str, ...],
                              latency_ms: float = 0.0, frames: int = 1, index: int = 0) -> SegmentationResult:
    """Batch item ``index`` of semantic outputs -> a SegmentationResult at the original resolution."""
    mask = outputs["MASK"][index]
    return SegmentationResult(unletterbox_mask(mask, box), class_names, latency_ms, frames,
                              unletterbox_counts(mask, box) if mask.dtype == np.uint8 else None)


def detections_to_original(outputs: dict[str, np.ndarray], box: Letterbox, class_names: tuple[str, ...],
                           latency_ms: float = 0.0, mask_threshold: float = 0.5, frames: int = 1,
                           index: int = 0) -> DetectionResult:
    """Batch item ``index`` of padded instance outputs, cut at its own NUM_DETECTIONS -> a DetectionResult in
    original image coordinates."""
    padded = outputs["SCORES"].shape[1]
    n = int(np.asarray(outputs["NUM_DETECTIONS"][index]).reshape(-1)[0])
    if not 0 <= n <= padded:
        raise ClientError(f"Bad NUM_DETECTIONS {n} for batch item {index}: outputs hold {padded} detections.")
    boxes = unletterbox_boxes(outputs["BOXES"][index][:n], box)
    h, w = box.original_height, box.original_width
    crops, origins = paste_masks_compact(outputs["MASKS"][index][:n].astype(np.float32), boxes, h, w,
                                         mask_threshold)
    return DetectionResult(boxes, outputs["SCORES"][index][:n].astype(np.float32),
                           outputs["LABELS"][index][:n].astype(np.int32), tuple(crops), origins, (h, w),
                           class_names, latency_ms, frames)
