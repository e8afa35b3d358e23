"""Write one model into a Triton model repository: ``<repo>/<name>/config.pbtxt``, ``labels.txt``, ``1/<artifact>``."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from export.config import ARTIFACTS, LABELS_FILE, ServingOptions, render_config
from export.errors import ExportError
from export.spec import ModelSpec
from export.layout import sidecar_path
from export.tensorrt.sidecar import check_plan_for_gpu

log = logging.getLogger(__name__)

LOCAL_MODEL_PY = Path(__file__).parent / "local_backend" / "model.py"


def write_model(spec: ModelSpec, options: ServingOptions, repository: Path, *, onnx_path: Path | None = None,
                plan_path: Path | None = None, target_gpu=None, version: int = 1) -> Path:
    """Assemble ``<repository>/<spec.name>`` for ``options.target`` and return the model folder.

    ``local`` and ``onnxruntime`` need ``onnx_path``; ``tensorrt`` needs ``plan_path``, whose sidecar must match
    ``target_gpu`` (default: this machine's GPU). Inputs are checked before anything is written."""
    if options.target in ("local", "onnxruntime"):
        if onnx_path is None or not onnx_path.is_file():
            raise ExportError(f"No ONNX file for `{spec.name}` at {onnx_path}.")
    else:
        if plan_path is None or not plan_path.is_file():
            raise ExportError(f"No TensorRT engine for `{spec.name}` at {plan_path}.")
        sidecar = check_plan_for_gpu(plan_path, target_gpu)
        if sidecar.model != spec.name:
            raise ExportError(f"Engine {plan_path} was built for `{sidecar.model}`, not `{spec.name}`.")
    model_dir = repository / spec.name
    version_dir = model_dir / str(version)
    if model_dir.exists():
        shutil.rmtree(model_dir)  # a re-export replaces the model whole: no stale artifacts of another target
    version_dir.mkdir(parents=True)
    if options.target in ("local", "onnxruntime"):
        _place(onnx_path, version_dir / ARTIFACTS["onnxruntime"])
        if options.target == "local":
            shutil.copyfile(LOCAL_MODEL_PY, version_dir / ARTIFACTS["local"])
    else:
        _place(plan_path, version_dir / ARTIFACTS["tensorrt"])
        shutil.copyfile(sidecar_path(plan_path), model_dir / sidecar_path(Path(ARTIFACTS["tensorrt"])).name)
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
