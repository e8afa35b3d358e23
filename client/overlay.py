"""Pictures of results: coloured class overlays, instance fills with outlines and labels."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from client.results import DetectionResult, SegmentationResult


def palette(count: int) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved), ``count`` x 3 uint8; class 0 is black."""
    ids = np.arange(count)
    colours = np.zeros((count, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            colours[:, channel] |= ((ids >> (shift * 3 + channel)) & 1) << (7 - shift)
    return colours.astype(np.uint8)


def overlay_semantic(rgb: np.ndarray, result: SegmentationResult, alpha: float = 0.55) -> Image.Image:
    """Blend each non-background class's colour over the image."""
    colours = palette(max(len(result.class_names), int(result.mask.max()) + 1))
    colour = colours[result.mask].astype(np.float32)
    fg = (result.mask != 0)[..., None]
    out = np.where(fg, rgb * (1 - alpha) + colour * alpha, rgb.astype(np.float32))
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (outside the array counts as outside the mask)."""
    padded = np.pad(mask, 1)
    inner = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def overlay_instances(rgb: np.ndarray, result: DetectionResult, alpha: float = 0.45) -> Image.Image:
    """Fill each instance mask, outline it, and label its box with class and score (from the compact masks:
    each instance touches only its own box)."""
    out = rgb.astype(np.float32)
    colours = palette(len(result) + 1)[1:]  # class 0 (black) skipped
    regions = []
    for crop, (x, y) in zip(result.mask_crops, result.mask_origins.tolist()):
        regions.append((out[y:y + crop.shape[0], x:x + crop.shape[1]], crop))
    for (region, crop), colour in zip(regions, colours):
        region[crop] = region[crop] * (1 - alpha) + colour * alpha
    for (region, crop), colour in zip(regions, colours):
        region[_outline(crop)] = colour
    image = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for box, score, name, colour in zip(result.boxes, result.scores, result.names, colours):
        x0, y0, x1, y1 = (float(v) for v in box)
        c = tuple(int(v) for v in colour)
        draw.rectangle((x0, y0, x1, y1), outline=c, width=2)
        text = f"{name} {score:.2f}"
        tx, ty = x0 + 2, max(y0 - 12, 0)
        draw.rectangle(draw.textbbox((tx, ty), text), fill=c)
        draw.text((tx, ty), text, fill=(255, 255, 255) if sum(c) < 384 else (0, 0, 0))
    return image
