"""perf_analyzer's ``--input-data`` JSON, built from real photos by the client's own pre-processing.

Each photo is decoded and letterboxed by ``client.preprocess.prepare``, exactly as ``client.Segmenter`` does before
a request, so the load test sends what a real caller sends (Mask R-CNN's cost depends on the image; random bytes
would not exercise it). The JSON holds one entry per photo, each a batch-1 tensor as base64 with its shape;
perf_analyzer sends them round-robin (client r24.08 ``src/c++/perf_analyzer/docs/input_data.md``, "Real Input Data").
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from client.errors import ClientError
from client.preprocess import prepare
from loadtest.errors import LoadTestError

# Real photographs shipped inside matplotlib (the `perf` extra): a portrait and an indoor still life; plus imgaug's
# quokka photo when `scripts/fetch-tools.sh quokka` has fetched it (sha256-pinned in export/data/assets.json).
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
QUOKKA = ("quokka", "imgaug/quokka.jpg")


def sample_photos() -> list[Path]:
    """The bundled sample photos (matplotlib's sample_data), and the fetched quokka photo if present."""
    from export.errors import ExportError
    from export.importer.builtin import fetched_file

    try:
        import matplotlib
    except ImportError:
        raise LoadTestError("The sample photos come with matplotlib: pip install 'segserve[perf]' "
                            "(or pass --image FILE).") from None
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [folder / name for name in MATPLOTLIB_PHOTOS if (folder / name).is_file()]
    try:
        photos.append(fetched_file(*QUOKKA))
    except ExportError:
        pass  # not fetched (or not the pinned file): the matplotlib photos suffice
    if not photos:
        raise LoadTestError(f"No sample photos in {folder}: pass --image FILE.")
    return photos


def input_data(images: list[Path], input_name: str, height: int, width: int) -> dict:
    """The input-data document: one letterboxed uint8 [H, W, 3] tensor per image."""
    if not images:
        raise LoadTestError("No images for the input data: pass --image FILE.")
    entries = []
    for path in images:
        try:
            canvas = prepare(path, height, width)[0]
        except ClientError as exc:
            raise LoadTestError(str(exc)) from None
        entries.append({input_name: {"content": {"b64": base64.b64encode(canvas.tobytes()).decode("ascii")},
                                     "shape": list(canvas.shape)}})
    return {"data": entries}


def write_input_data(path: Path, images: list[Path], input_name: str, height: int, width: int) -> Path:
    """Write the document aside and rename it into place."""
    document = input_data(images, input_name, height, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, path)
    return path
