"""Image in -> the model's uint8 NHWC input (pure functions, no I/O beyond decoding what they are given).

Letterboxing keeps the aspect ratio: the image is resized to fit the model size and centred on a neutral canvas;
``Letterbox`` records the geometry so post-processing can undo it exactly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from client.errors import ClientError

ImageLike = Union[str, Path, bytes, np.ndarray, Image.Image]

# ImageNet mean colour: pads normalise to ~0, the least surprising value for the network.
PAD_COLOUR = (124, 116, 104)


@dataclass(frozen=True)
class Letterbox:
    """Where the original image sits inside the model input."""

    original_height: int
    original_width: int
    scale: float
    pad_top: int
    pad_left: int
    resized_height: int
    resized_width: int


def load_image(image: ImageLike) -> np.ndarray:
    """Decode ``image`` (path, bytes, PIL image or RGB array) to an RGB uint8 array, EXIF orientation applied."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ClientError(f"Bad image array {image.dtype}{list(image.shape)}: expected uint8 [H, W, 3] RGB.")
        return image
    if isinstance(image, Image.Image):
        pil = image
    else:
        source = io.BytesIO(image) if isinstance(image, bytes) else image
        name = "<bytes>" if isinstance(image, bytes) else str(image)
        try:
            pil = Image.open(source)
            pil.load()
        except FileNotFoundError:
            raise ClientError(f"Cannot read image `{name}`: no such file.") from None
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ClientError(f"Cannot read image `{name}`: not a decodable image ({exc}).") from None
    pil = ImageOps.exif_transpose(pil)
    return np.asarray(pil.convert("RGB"), dtype=np.uint8)


def letterbox(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, Letterbox]:
    """Resize ``rgb`` to fit ``height`` x ``width`` keeping its aspect ratio, centred on a padded canvas."""
    h, w = rgb.shape[:2]
    scale = min(height / h, width / w)
    nh, nw = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    top, left = (height - nh) // 2, (width - nw) // 2
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = PAD_COLOUR
    if (nh, nw) == (h, w):
        resized = rgb
    else:
        resized = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, Letterbox(h, w, scale, top, left, nh, nw)
