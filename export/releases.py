"""NGC release -> Triton -> TensorRT version table: one file (``export/data/releases.json``) shared with the chart.

The chart carries a byte-identical copy (``charts/segserve/releases.json``, read with ``.Files.Get``);
``scripts/sync_releases.py`` writes it and a test keeps the two identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from export.errors import ExportError

RELEASES_FILE = Path(__file__).parent / "data" / "releases.json"
# Set by docker/engine-builder/Dockerfile: the NGC release of the image this process runs in. NGC ships
# tensorrt:<yy.mm>-py3 and tritonserver:<yy.mm>-py3 with the same TensorRT, so inside that image the installed
# TensorRT is taken as the release's where the table has no version yet (export.tensorrt.sidecar.check_release).
BUILDER_RELEASE_ENV = "SEGSERVE_NGC_RELEASE"


@dataclass(frozen=True)
class Release:
    """One NGC monthly release: the Triton image that serves and the TensorRT image that builds its engines."""

    ngc: str
    triton: str | None
    tensorrt: str | None
    cuda: str | None
    triton_image: str
    builder_base_image: str
    notes: str
    source: str


@lru_cache(maxsize=None)
def _table() -> dict:
    return json.loads(RELEASES_FILE.read_text())


def releases() -> dict[str, Release]:
    """Every known release by NGC tag (``yy.mm``), oldest first."""
    return {row["ngc"]: Release(**row) for row in _table()["releases"]}


def default_release() -> Release:
    return get_release()


def get_release(ngc: str | None = None) -> Release:
    """The release ``ngc`` (``yy.mm``; None or empty: the table's default); an unknown one lists the known ones."""
    known = releases()
    if not ngc:
        ngc = _table()["default"]
    try:
        return known[ngc]
    except KeyError:
        raise ExportError(f"Unknown NGC release `{ngc}`. Known: {', '.join(known)} "
                          f"(add a row to {RELEASES_FILE.name}).") from None
