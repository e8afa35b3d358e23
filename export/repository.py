"""Write one model into a Triton model repository: ``<repo>/<name>/config.pbtxt``, ``labels.txt``, ``1/<artifact>``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from export.config import ARTIFACTS, LABELS_FILE, ServingOptions, render_config
from export.errors import ExportError
from export.spec import ModelSpec

log = logging.getLogger(__name__)

LOCAL_MODEL_PY = Path(__file__).parent / "local_backend" / "model.py"


def write_model(spec: ModelSpec, options: ServingOptions, repository: Path, *, onnx_path: Path | None = None,
                plan_path: Path | None = None, version: int = 1) -> Path:
    """Assemble ``<repository>/<spec.name>`` for ``options.target`` and return the model folder.

    ``local`` and ``onnxruntime`` need ``onnx_path``; ``tensorrt`` needs ``plan_path`` (checked by the caller
    against the GPU it will run on)."""
    model_dir = repository / spec.name
    version_dir = model_dir / str(version)
    if model_dir.exists():
        shutil.rmtree(model_dir)  # a re-export replaces the model whole: no stale artifacts of another target
    version_dir.mkdir(parents=True)
    if options.target in ("local", "onnxruntime"):
        if onnx_path is None or not onnx_path.is_file():
            raise ExportError(f"No ONNX file for `{spec.name}` at {onnx_path}.")
        _place(onnx_path, version_dir / "model.onnx")
        if options.target == "local":
            shutil.copyfile(LOCAL_MODEL_PY, version_dir / ARTIFACTS["local"])
    else:
        if plan_path is None or not plan_path.is_file():
            raise ExportError(f"No TensorRT engine for `{spec.name}` at {plan_path}.")
        _place(plan_path, version_dir / ARTIFACTS["tensorrt"])
    (model_dir / "config.pbtxt").write_text(render_config(spec, options))
    (model_dir / LABELS_FILE).write_text("\n".join(spec.class_names) + "\n")
    log.debug("wrote %s (%s target) to %s", spec.name, options.target, model_dir)
    return model_dir


def _place(source: Path, dest: Path) -> None:
    """Hard-link when possible (ONNX files are hundreds of MB), else copy."""
    try:
        dest.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, dest)
