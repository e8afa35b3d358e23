"""Model outputs -> results at the original image's resolution (pure numpy, vectorised).

``unletterbox_mask`` crops the letterbox padding and resizes class ids back with nearest-neighbour sampling
(pixel centres, PIL/OpenCV semantics), as two gathers: columns first on the small crop, then whole rows.
``paste_masks_compact`` follows torchvision's ``paste_masks_in_image`` (torchvision/models/detection/roi_heads.py,
v0.29): each 28x28 probability map is padded by one cell, its box grown to match, bilinearly resized to the box
(align_corners=False) as two small matrix products, and thresholded. It returns each mask cropped to its box, so
100 instances at 1080p cost a few MB; ``paste_masks`` places them in full frames for callers that want those.
"""

from __future__ import annotations

import numpy as np

from client.preprocess import Letterbox


def _nearest_index(out_size: int, in_size: int) -> np.ndarray:
    """Source index for each output pixel, sampling pixel centres (PIL/OpenCV nearest semantics)."""
    return np.minimum(((np.arange(out_size) + 0.5) * (in_size / out_size)).astype(np.int64), in_size - 1)


def unletterbox_mask(mask: np.ndarray, box: Letterbox) -> np.ndarray:
    """A [H, W] model-frame label mask -> [original_height, original_width]."""
    crop = mask[box.pad_top:box.pad_top + box.resized_height, box.pad_left:box.pad_left + box.resized_width]
    rows = _nearest_index(box.original_height, box.resized_height)
    cols = _nearest_index(box.original_width, box.resized_width)
    return crop.take(cols, axis=1).take(rows, axis=0)


def unletterbox_counts(mask: np.ndarray, box: Letterbox) -> np.ndarray:
    """Pixels of each class id in ``unletterbox_mask(mask, box)``, counted on the model-frame crop: each crop
    pixel stands for (rows that sample it) x (columns that sample it) original pixels. Exact, and ~10x cheaper
    than counting the full-resolution mask. ``mask`` must hold non-negative integers."""
    crop = mask[box.pad_top:box.pad_top + box.resized_height, box.pad_left:box.pad_left + box.resized_width]
    rows = np.bincount(_nearest_index(box.original_height, box.resized_height), minlength=box.resized_height)
    cols = np.bincount(_nearest_index(box.original_width, box.resized_width), minlength=box.resized_width)
    weights = (rows[:, None] * cols[None, :]).ravel().astype(np.float64)
    return np.rint(np.bincount(crop.ravel(), weights=weights)).astype(np.int64)


def unletterbox_boxes(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """[N, 4] (x1, y1, x2, y2) in model-input pixels -> original-image pixels, clipped to the image. Each axis is
    scaled by its own resize ratio (the resized sides are rounded), so the resized region maps onto the whole image."""
    shift = np.array([box.pad_left, box.pad_top, box.pad_left, box.pad_top], dtype=np.float32)
    sx, sy = box.original_width / box.resized_width, box.original_height / box.resized_height
    out = (boxes.astype(np.float32) - shift) * np.array([sx, sy, sx, sy], dtype=np.float32)
    out[:, 0::2] = np.clip(out[:, 0::2], 0, box.original_width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, box.original_height)
    return out


def _bilinear_matrix(out_size: int, in_size: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of the [out, in] weights of a 1-D bilinear resize with align_corners=False
    (torch.nn.functional.interpolate)."""
    stop = out_size if stop is None else stop
    src = (np.arange(start, stop, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = (src - i0).astype(np.float32)
    rows = np.arange(stop - start)
    weights = np.zeros((stop - start, in_size), dtype=np.float32)
    weights[rows, i0] = 1.0 - frac
    weights[rows, i1] += frac  # i1 == i0 at the last cell: the weights still add up to 1
    return weights


def _grown_boxes(boxes: np.ndarray, m: int) -> np.ndarray:
    scale = (m + 2) / m
    centre_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    centre_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    grown = np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1)
    return np.trunc(grown).astype(np.int64)  # torchvision casts to int64 (truncation)


def paste_masks_compact(masks: np.ndarray, boxes: np.ndarray, height: int, width: int, threshold: float = 0.5
                        ) -> tuple[list[np.ndarray], np.ndarray]:
    """[N, M, M] mask probabilities in box frames + [N, 4] boxes (image pixels) -> (N boolean crops, [N, 2] int
    (x, y) of each crop's top-left corner in the image). A crop covers its grown box clipped to the image."""
    n = len(masks)
    origins = np.zeros((n, 2), dtype=np.int64)
    if n == 0:
        return [], origins
    m = masks.shape[-1]
    padded = np.zeros((n, m + 2, m + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = masks
    crops = []
    for i, (x0, y0, x1, y1) in enumerate(_grown_boxes(np.asarray(boxes, np.float32), m).tolist()):
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        ix0, ix1 = min(max(x0, 0), width), min(x1 + 1, width)
        iy0, iy1 = min(max(y0, 0), height), min(y1 + 1, height)
        origins[i] = (ix0, iy0)
        if ix0 >= ix1 or iy0 >= iy1:
            crops.append(np.zeros((0, 0), dtype=bool))
            continue
        ry = _bilinear_matrix(h, m + 2, iy0 - y0, iy1 - y0)
        rx = _bilinear_matrix(w, m + 2, ix0 - x0, ix1 - x0)
        crops.append((ry @ padded[i]) @ rx.T > threshold)
    return crops, origins


def paste_full(crops: list[np.ndarray], origins: np.ndarray, height: int, width: int) -> np.ndarray:
    """Compact crops -> [N, height, width] bool full frames."""
    out = np.zeros((len(crops), height, width), dtype=bool)
    for i, crop in enumerate(crops):
        x, y = (int(v) for v in origins[i])
        out[i, y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    return out


def paste_masks(masks: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float = 0.5) -> np.ndarray:
    """[N, M, M] mask probabilities in box frames + [N, 4] boxes (image pixels) -> [N, height, width] bool."""
    crops, origins = paste_masks_compact(masks, boxes, height, width, threshold)
    return paste_full(crops, origins, height, width)
