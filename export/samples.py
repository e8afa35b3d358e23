"""Deterministic sample images (nothing downloaded): smooth backgrounds with filled shapes.

Natural-looking structure matters for parity checks: on pure noise a random-weight network produces near-tied logits
everywhere, which says more about float rounding than about the export.
"""

from __future__ import annotations

import numpy as np


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image of ``height`` x ``width``: a colour gradient with a few ellipses and rectangles."""
    return synthetic_scene(height, width, seed)[0]


def synthetic_scene(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``synthetic_image`` and its ground truth, a toy segmentation task: int64 ``height`` x ``width`` labels, 0 for
    the background and 1 + the dominant colour channel (1 red, 2 green, 3 blue) for each shape's visible pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3)
    tilt = rng.uniform(-60, 60, size=(2, 3))
    image = base + (yy / height)[..., None] * tilt[0] + (xx / width)[..., None] * tilt[1]
    labels = np.zeros((height, width), dtype=np.int64)
    for _ in range(rng.integers(3, 7)):
        colour = rng.uniform(0, 255, size=3)
        cy, cx = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        ry, rx = rng.uniform(0.05, 0.3) * height, rng.uniform(0.05, 0.3) * width
        if rng.random() < 0.5:
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        else:
            inside = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
        image[inside] = colour
        labels[inside] = 1 + np.argmax(colour)
    image += rng.normal(0, 4, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels
