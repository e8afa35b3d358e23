"""Where things live, defined once: the Triton model repository layout and the export's working folders.

A served model directory (what Triton loads, what ``build-engine`` writes and what the chart mounts)::

    <repository>/<model>/config.pbtxt
    <repository>/<model>/labels.txt
    <repository>/<model>/<version>/model.onnx | model.plan | model.py
    <repository>/<model>/model.plan.json      (tensorrt only: the engine's sidecar)

The layout follows Triton's model repository rules (server ``docs/user_guide/model_repository.md``: one folder per
model, numeric version sub-folders, ``default_model_filename`` model.onnx / model.plan / model.py per backend).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tools_dir() -> Path:
    """The fetched tools and assets (tritonserver, perf_analyzer, helm, u2netp.onnx...): ``$SEGSERVE_TOOLS``, else
    ``.tools`` in the checkout (``make tools`` / ``scripts/fetch-tools.sh``)."""
    return Path(os.environ.get("SEGSERVE_TOOLS", ROOT / ".tools"))


CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
ARTIFACTS = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "local": "model.py"}
SIDECAR_SUFFIX = ".json"
VERSION = 1

# ONNX Runtime's TensorRT accelerator keeps its engines and timing cache here, inside the persistent volume the chart
# mounts at /engine-cache (charts/segserve values ``engineCache.mountPath``), so restarts reuse them.
ORT_TRT_CACHE_DIR = "/engine-cache/onnxruntime-trt"

DEFAULT_WORK_DIR = Path("build")
DEFAULT_CACHE_DIR = DEFAULT_WORK_DIR / "engines"


def sidecar_path(plan: Path) -> Path:
    """An engine's JSON sidecar: ``model.plan`` -> ``model.plan.json`` beside it."""
    return plan.with_name(plan.name + SIDECAR_SUFFIX)


def served_sidecar_path(model_dir: Path) -> Path:
    """Where a served tensorrt model keeps its engine's sidecar (beside config.pbtxt, outside the version folder)."""
    return model_dir / sidecar_path(Path(ARTIFACTS["tensorrt"])).name


def onnx_path_for(work_dir: Path, model: str) -> Path:
    """Where the export of ``model`` is written inside ``work_dir``."""
    return work_dir / model / ARTIFACTS["onnxruntime"]


def repository_onnx_files(repository: Path, version: int = VERSION) -> list[Path]:
    """Every ``<repository>/<model>/<version>/model.onnx`` (an onnxruntime or local repository), sorted."""
    return sorted(p for p in repository.glob(f"*/{version}/{ARTIFACTS['onnxruntime']}") if p.is_file())
