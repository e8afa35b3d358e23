"""Model outputs -> results at the original image's resolution (pure numpy, vectorised).

``unletterbox_mask`` crops the letterbox padding and resizes class ids back with nearest-neighbour sampling.
``paste_masks`` follows torchvision's ``paste_masks_in_image``: each 28x28 probability map is padded by one cell,
its box grown to match, bilinearly resized to the box (align_corners=False) as two small matrix products, and
thresholded.
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
    return crop[rows[:, None], cols[None, :]]


def unletterbox_boxes(boxes: np.ndarray, box: Letterbox) -> np.ndarray:
    """[N, 4] (x1, y1, x2, y2) in model-input pixels -> original-image pixels, clipped to the image."""
    shift = np.array([box.pad_left, box.pad_top, box.pad_left, box.pad_top], dtype=np.float32)
    out = (boxes.astype(np.float32) - shift) / np.float32(box.scale)
    out[:, 0::2] = np.clip(out[:, 0::2], 0, box.original_width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, box.original_height)
    return out


def _bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """[out, in] weights of a 1-D bilinear resize with align_corners=False (torch.nn.functional.interpolate)."""
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    weights = np.zeros((out_size, in_size), dtype=np.float32)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, i0), 1.0 - frac)
    np.add.at(weights, (rows, i1), frac)
    return weights


def paste_masks(masks: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float = 0.5) -> np.ndarray:
    """[N, M, M] mask probabilities in box frames + [N, 4] boxes (image pixels) -> [N, height, width] bool."""
    n = len(masks)
    out = np.zeros((n, height, width), dtype=bool)
    if n == 0:
        return out
    m = masks.shape[-1]
    padded = np.zeros((n, m + 2, m + 2), dtype=np.float32)
    padded[:, 1:-1, 1:-1] = masks
    scale = (m + 2) / m
    centre_x = (boxes[:, 2] + boxes[:, 0]) * 0.5
    centre_y = (boxes[:, 3] + boxes[:, 1]) * 0.5
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    grown = np.stack([centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h], axis=1)
    grown = np.trunc(grown).astype(np.int64)  # torchvision casts to int64 (truncation)
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in grown[i])
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        ix0, ix1 = max(x0, 0), min(x1 + 1, width)
        iy0, iy1 = max(y0, 0), min(y1 + 1, height)
        if ix0 >= ix1 or iy0 >= iy1:
            continue
        ry = _bilinear_matrix(h, m + 2)[iy0 - y0:iy1 - y0]
        rx = _bilinear_matrix(w, m + 2)[ix0 - x0:ix1 - x0]
        out[i, iy0:iy1, ix0:ix1] = (ry @ padded[i] @ rx.T) > threshold
    return out
