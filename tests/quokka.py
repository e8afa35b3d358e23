"""The quokka photo from imgaug 0.4.0's wheel and its polygon ground truth (fetched by `scripts/fetch-tools.sh
quokka`), and the image variants a client must handle, each with its ground truth transformed alike.

Shared by tests/integration/test_real_model.py, bench/u2netp_quokka.py and scripts/demo.py (PIL + numpy; the
paths come from export/data/assets.json; no I/O beyond those files and the ones it writes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from export.importer.builtin import asset_path

# Where scripts/fetch_assets.py puts them: export/data/assets.json says, as it does for u2netp.onnx.
PHOTO = asset_path("quokka", "imgaug/quokka.jpg")[0]
ANNOTATIONS = asset_path("quokka", "imgaug/quokka_annotations.json")[0]
QUOKKA_DIR = PHOTO.parent
EXIF_ORIENTATION = 0x0112
CROP = (100, 30, 620, 643)  # left, top, right, bottom: another aspect ratio, the animal's top-left cut closer
VARIANTS = ("original", "exif-rotated", "rgba-png", "grayscale", "upscaled-4x", "crop")


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    truth: np.ndarray  # [H, W] bool at the image's displayed resolution


def missing() -> str | None:
    """Why the quokka files cannot be used, or None."""
    if not (PHOTO.is_file() and ANNOTATIONS.is_file()):
        return f"{QUOKKA_DIR} is not fetched: run `scripts/fetch-tools.sh quokka` (make tools)"
    return None


def polygon() -> np.ndarray:
    """The animal's outline, [K, 2] (x, y) in photo pixels."""
    points = json.loads(ANNOTATIONS.read_text())["polygons"][0]["keypoints"]
    return np.array([(p["x"], p["y"]) for p in points], dtype=np.float64)


def rasterise(points: np.ndarray, height: int, width: int) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in points], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(mask, truth).sum()
    return float(np.logical_and(mask, truth).sum() / union) if union else 1.0


def make_variants(folder: Path) -> dict[str, Variant]:
    """Write every variant into ``folder``; the ground truth of each follows the same geometric change."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.open(PHOTO)
    photo.load()
    rgb = photo.convert("RGB")
    width, height = rgb.size
    outline = polygon()
    truth = rasterise(outline, height, width)
    out = {"original": Variant("original", PHOTO, truth)}

    # Pixels stored turned 90 degrees counter-clockwise; EXIF orientation 6 tells viewers to turn them back.
    rotated = folder / "quokka-exif-rotated.jpg"
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    rgb.transpose(Image.Transpose.ROTATE_90).save(rotated, quality=95, exif=exif)
    out["exif-rotated"] = Variant("exif-rotated", rotated, truth)

    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize((width, height)))  # alpha 0..255 top to bottom
    path = folder / "quokka-rgba.png"
    rgba.save(path)
    out["rgba-png"] = Variant("rgba-png", path, truth)

    path = folder / "quokka-gray.png"
    rgb.convert("L").save(path)
    out["grayscale"] = Variant("grayscale", path, truth)

    path = folder / "quokka-4x.jpg"
    rgb.resize((width * 4, height * 4), Image.Resampling.BICUBIC).save(path, quality=95)
    scaled = (outline + 0.5) * 4 - 0.5  # pixel centres map to pixel centres
    out["upscaled-4x"] = Variant("upscaled-4x", path, rasterise(scaled, height * 4, width * 4))

    left, top, right, bottom = CROP
    path = folder / "quokka-crop.png"
    rgb.crop(CROP).save(path)
    out["crop"] = Variant("crop", path, rasterise(outline - (left, top), bottom - top, right - left))
    return out
