"""Image in -> the model's uint8 NHWC input (pure functions, no I/O beyond decoding what they are given).

Letterboxing keeps the aspect ratio: the image is resized to fit the model size and centred on a neutral canvas;
``Letterbox`` records the geometry so post-processing can undo it exactly.

Speed (bench/client_bench.py): a JPEG larger than the model input is decoded at a reduced DCT scale
(``Image.draft``: 1/2, 1/4 or 1/8, never below the size the letterbox needs), EXIF orientation is applied to that
small image, and it is resized once. The geometry is always computed from the original (oriented) size, so the
letterbox and its inverse are the same whichever path decoded the image.
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

# Refuse to decode more pixels than this (checked from the header, before decoding). PIL's own decompression-bomb
# threshold: a 12000x12000 PNG is 144 MP and needs GBs of memory and tens of seconds to decode.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485

# EXIF orientations 5..8 swap width and height (TIFF/EXIF 2.32 tag 0x0112).
_SWAPS_AXES = {5, 6, 7, 8}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


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


def fit(height: int, width: int, model_height: int, model_width: int) -> Letterbox:
    """The letterbox geometry of an ``height`` x ``width`` image in a ``model_height`` x ``model_width`` input."""
    if height < 1 or width < 1:
        raise ClientError(f"Bad image size {width}x{height}: an image needs at least one pixel.")
    scale = min(model_height / height, model_width / width)
    nh = max(1, min(model_height, round(height * scale)))
    nw = max(1, min(model_width, round(width * scale)))
    return Letterbox(height, width, scale, (model_height - nh) // 2, (model_width - nw) // 2, nh, nw)


def _canvas(resized: np.ndarray, box: Letterbox, height: int, width: int) -> np.ndarray:
    """Place ``resized`` on a ``height`` x ``width`` canvas, filling only the padding."""
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    top, left = box.pad_top, box.pad_left
    bottom, right = top + box.resized_height, left + box.resized_width
    canvas[:top] = PAD_COLOUR
    canvas[bottom:] = PAD_COLOUR
    canvas[top:bottom, :left] = PAD_COLOUR
    canvas[top:bottom, right:] = PAD_COLOUR
    canvas[top:bottom, left:right] = resized
    return canvas


def letterbox(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, Letterbox]:
    """Resize ``rgb`` to fit ``height`` x ``width`` keeping its aspect ratio, centred on a padded canvas."""
    rgb = check_array(rgb)
    box = fit(rgb.shape[0], rgb.shape[1], height, width)
    if (box.resized_height, box.resized_width) == rgb.shape[:2]:
        resized = rgb
    else:
        resized = np.asarray(Image.fromarray(rgb).resize((box.resized_width, box.resized_height), Image.BILINEAR))
    return _canvas(resized, box, height, width), box


def check_array(rgb: object) -> np.ndarray:
    """An RGB image array, or a one-line ClientError naming what it is instead."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        what = f"{rgb.dtype}{list(rgb.shape)}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ClientError(f"Bad image array {what}: expected uint8 [H, W, 3] RGB.")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ClientError(f"Bad image array {rgb.dtype}{list(rgb.shape)}: it has no pixels.")
    return rgb


# -- decoding ------------------------------------------------------------------------------------------------
def _name(image: object) -> str:
    return "<bytes>" if isinstance(image, (bytes, bytearray, memoryview)) else str(image)


def open_image(image: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open (header only, nothing decoded yet) and check the pixel count against ``max_pixels``."""
    if not isinstance(image, (str, Path, bytes, bytearray, memoryview)):
        raise ClientError(f"Bad image of type {type(image).__name__}: expected a path, bytes, a PIL image or a "
                          "uint8 [H, W, 3] RGB array.")
    name = _name(image)
    source = io.BytesIO(image) if isinstance(image, (bytes, bytearray, memoryview)) else image
    try:
        pil = Image.open(source)
    except FileNotFoundError:
        raise ClientError(f"Cannot read image `{name}`: no such file.") from None
    except IsADirectoryError:
        raise ClientError(f"Cannot read image `{name}`: it is a folder.") from None
    except Image.DecompressionBombError as exc:
        raise ClientError(f"Image `{name}` is above the budget of {max_pixels:,} pixels (PIL: "
                          f"{str(exc).removesuffix('.')}).") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ClientError(f"Cannot read image `{name}`: not a decodable image ({exc}).") from None
    width, height = pil.size
    if width * height > max_pixels:
        pil.close()
        raise ClientError(f"Image `{name}` is {width}x{height} ({width * height:,} pixels), above the budget of "
                          f"{max_pixels:,} pixels: shrink it first or raise max_pixels (--max-pixels).")
    return pil


def frame_count(pil: Image.Image) -> int:
    """Frames (animated GIF/PNG/WebP) or pages (TIFF) in the file; only the first is used."""
    return int(getattr(pil, "n_frames", 1))


def to_rgb(pil: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. 16-bit greys are scaled to 8 bits (PIL's convert would clip them to white)."""
    if pil.mode == "RGB":
        return pil
    if pil.mode in _SIXTEEN_BIT or pil.mode == "I":
        values = np.asarray(pil)
        if pil.mode == "I" and values.max() <= 255:
            grey = np.maximum(values, 0)  # 8-bit values stored in 32 bits; negatives are black
        else:
            grey = (values >> 8).clip(0, 255)  # the high byte of 16 bits; negatives black, above 16 bits white
        return Image.fromarray(grey.astype(np.uint8)).convert("RGB")
    if pil.mode == "F":
        values = np.asarray(pil)
        top = 1.0 if values.max() <= 1.0 else 255.0
        return Image.fromarray((values.clip(0, top) * (255.0 / top)).round().astype(np.uint8)).convert("RGB")
    return pil.convert("RGB")


def _swaps_axes(pil: Image.Image) -> bool:
    """Whether the EXIF orientation turns the image a quarter. PIL reads a broken EXIF block as empty; a truncated
    file makes getexif raise (struct.error), and decoding it then reports the error."""
    try:
        return pil.getexif().get(0x0112) in _SWAPS_AXES
    except Exception:
        return False


def _decode(pil: Image.Image, name: str, draft_to: tuple[int, int] | None = None) -> tuple[Image.Image, int]:
    """Decode the first frame (optionally at a reduced JPEG scale) with EXIF orientation applied, in RGB."""
    try:
        if draft_to is not None and pil.format == "JPEG":
            w, h = draft_to
            pil.draft(None, (h, w) if _swaps_axes(pil) else (w, h))  # a mode only matters for "L"/"YCbCr" requests
        pil.load()
        oriented = ImageOps.exif_transpose(pil)
        return to_rgb(oriented), frame_count(pil)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ClientError(f"Cannot read image `{name}`: not a decodable image ({exc}).") from None


def oriented_size(pil: Image.Image) -> tuple[int, int]:
    """(height, width) after EXIF orientation, from the header."""
    width, height = pil.size
    return (width, height) if _swaps_axes(pil) else (height, width)


def load_image(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``image`` (path, bytes, PIL image or RGB array) to an RGB uint8 array, EXIF orientation applied."""
    return load_image_frames(image, max_pixels)[0]


def load_image_frames(image: ImageLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, int]:
    """``load_image`` plus the number of frames in the source (animated GIF, multi-page TIFF: the first is used)."""
    if isinstance(image, np.ndarray):
        return check_array(image), 1
    if isinstance(image, Image.Image):
        rgb, frames = _decode(image, "<PIL image>")
        return np.asarray(rgb), frames
    pil = open_image(image, max_pixels)
    with pil:
        rgb, frames = _decode(pil, _name(image))
        return np.asarray(rgb), frames


def prepare(image: ImageLike, height: int, width: int, max_pixels: int = DEFAULT_MAX_PIXELS
            ) -> tuple[np.ndarray, Letterbox, int]:
    """Image -> (model canvas, letterbox geometry, frame count), decoding a large JPEG at a reduced scale."""
    if isinstance(image, np.ndarray):
        canvas, box = letterbox(image, height, width)
        return canvas, box, 1
    if isinstance(image, Image.Image):
        pil, name, owned = image, "<PIL image>", False
    else:
        pil, name, owned = open_image(image, max_pixels), _name(image), True
    try:
        oh, ow = oriented_size(pil)
        box = fit(oh, ow, height, width)
        rgb, frames = _decode(pil, name, draft_to=(box.resized_width, box.resized_height) if owned else None)
        if rgb.size != (box.resized_width, box.resized_height):
            rgb = rgb.resize((box.resized_width, box.resized_height), Image.BILINEAR)
        return _canvas(np.asarray(rgb), box, height, width), box, frames
    finally:
        if owned:
            pil.close()
