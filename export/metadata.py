"""What ``python -m export`` stores in an ONNX file's metadata, and reading it back (no torch needed).

The spec travels inside the ONNX file, so a standalone engine build (e.g. in the chart's init container) derives its
optimisation profiles, config.pbtxt and labels from the same source of truth; the precision the graph was converted
to travels with it, because a strongly typed engine takes its precision from the graph.
"""

from __future__ import annotations

from pathlib import Path

from export.errors import ExportError, require
from export.spec import ModelSpec

SPEC_KEY = "segserve.spec"
PRECISION_KEY = "segserve.precision"
REWRITES_KEY = "segserve.trt_rewrites"


def set_metadata(model, entries: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value


def load_onnx(onnx_path: Path, load_external_data: bool = True):
    """``onnx.load``, with a one-line error for a missing file."""
    onnx = require("onnx")
    if not onnx_path.is_file():
        raise ExportError(f"ONNX file {onnx_path} does not exist.")
    return onnx.load(str(onnx_path), load_external_data=load_external_data)


def save_onnx(model, path: Path) -> Path:
    """The serialised model written aside and renamed into place (``export.locks.atomic_write``): a reader never sees
    half a file, and each save is a new file (inode), so a repository that hard-links an earlier one keeps what it
    had."""
    from export.locks import atomic_write

    atomic_write(path, model.SerializeToString())
    return path


def metadata_of(model) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def read_metadata(onnx_path: Path) -> dict[str, str]:
    return metadata_of(load_onnx(onnx_path, load_external_data=False))


def _spec(props: dict[str, str], onnx_path: Path) -> ModelSpec:
    if SPEC_KEY not in props:
        raise ExportError(f"{onnx_path} carries no segserve spec: export it with `python -m export`.")
    return ModelSpec.from_json(props[SPEC_KEY])


def precision_of(props: dict[str, str]) -> str:
    return props.get(PRECISION_KEY, "fp32")  # files from before precision was recorded are FP32


def spec_from_onnx(onnx_path: Path) -> ModelSpec:
    """The spec that ``python -m export`` stored in the ONNX file's metadata."""
    return _spec(read_metadata(onnx_path), onnx_path)


def precision_from_onnx(onnx_path: Path) -> str:
    """``fp16`` or ``fp32``: what the graph computes in."""
    return precision_of(read_metadata(onnx_path))


def spec_and_precision(onnx_path: Path) -> tuple[ModelSpec, str]:
    """Both of the above from one read: reading the metadata parses the whole file (hundreds of MB)."""
    props = read_metadata(onnx_path)
    return _spec(props, onnx_path), precision_of(props)
