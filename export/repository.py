"""Write one model into a Triton model repository: ``<repo>/<name>/config.pbtxt``, ``labels.txt``, ``1/<artifact>``."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from export.config import ServingOptions, render_config
from export.errors import ExportError
from export.layout import ARTIFACTS, CONFIG_FILE, LABELS_FILE, VERSION, served_sidecar_path, sidecar_path
from export.locks import file_lock
from export.spec import ModelSpec
from export.tensorrt.sidecar import check_plan_for_gpu

log = logging.getLogger(__name__)

LOCAL_MODEL_PY = Path(__file__).parent / "local_backend" / "model.py"


def write_model(spec: ModelSpec, options: ServingOptions, repository: Path, *, onnx_path: Path | None = None,
                plan_path: Path | None = None, target_gpu=None, version: int = VERSION) -> Path:
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
    repository.mkdir(parents=True, exist_ok=True)
    # One writer at a time per repository (pods of the chart may share one): the clean-up below then only ever
    # meets what dead writers left.
    work = _staging_root(repository)
    with file_lock(write_lock_path(repository, work), WRITE_LOCK_TIMEOUT_S,
                   busy=f"another export is writing into {repository}; try again when it has finished."):
        return _write_locked(spec, options, repository, work, onnx_path, plan_path, version)


def _write_locked(spec: ModelSpec, options: ServingOptions, repository: Path, work: Path, onnx_path: Path | None,
                  plan_path: Path | None, version: int) -> Path:
    model_dir = repository / spec.name
    _recover(repository, work, spec.name)
    # The new model is built beside the old one, on the same file system, and swapped in with one rename: an
    # interrupted export leaves the old model serving and nothing half-written in its place.
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}{STAGING}", dir=work))
    try:
        version_dir = staging / str(version)
        version_dir.mkdir()
        if options.target in ("local", "onnxruntime"):
            _place(onnx_path, version_dir / ARTIFACTS["onnxruntime"])
            if options.target == "local":
                shutil.copyfile(LOCAL_MODEL_PY, version_dir / ARTIFACTS["local"])
        else:
            _place(plan_path, version_dir / ARTIFACTS["tensorrt"])
            shutil.copyfile(sidecar_path(plan_path), served_sidecar_path(staging))
        (staging / CONFIG_FILE).write_text(render_config(spec, options))
        (staging / LABELS_FILE).write_text("\n".join(spec.class_names) + "\n")
        os.chmod(staging, 0o755)  # mkdtemp makes it 0700; the model folder is read by the server's user
        # A re-export replaces the model whole: no stale artifacts of another target survive the swap.
        _swap_in(staging, model_dir, work)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap: the old model; after a failure: the new one
    log.debug("wrote %s (%s target) to %s", spec.name, options.target, model_dir)
    return model_dir


STAGING = ".staging-"
ASIDE = ".old-"
WRITE_LOCK_TIMEOUT_S = 600.0  # a write is links and small files; copying a plan across file systems takes longer
RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE) (Linux 3.15+, glibc 2.28+); False where the
    kernel, libc or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(new: Path, dest: Path, work: Path) -> None:
    """Put folder ``new`` at ``dest``; the old ``dest`` (if any) ends up at ``new``'s path for the caller to remove."""
    if not dest.exists():
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        return
    # Two renames: signals are held back between them so Ctrl-C cannot leave `dest` missing.
    aside = work / f".{dest.name}{ASIDE}{os.getpid()}"
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        os.rename(dest, aside)
        os.rename(new, dest)
        os.rename(aside, new)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _staging_root(repository: Path) -> Path:
    """Where models are built before the swap: ``<parent>/.<repository>.staging``, outside the repository, because
    Triton takes every folder in it for a model, hidden ones too (2.51: "unexpected directory name
    '.unet.staging-x' for model 'unet'" stops the server; core src/model_repository_manager.cc, r24.10). Inside the
    repository only when it is a mount point of its own (a rename cannot cross file systems)."""
    repository = repository.resolve()
    outside = repository.parent / f".{repository.name}.staging"
    try:
        outside.mkdir(exist_ok=True)
        if outside.stat().st_dev == repository.stat().st_dev:
            return outside
    except OSError:
        pass
    return repository


def write_lock_path(repository: Path, work: Path | None = None) -> Path:
    """The lock file of ``repository``'s writers, beside its staging folder ``work`` (default: found here) (a file:
    Triton only takes folders for models, so inside a repository that is a mount point of its own it is ignored
    too)."""
    work = work or _staging_root(repository)
    return work / ".segserve-write.lock" if work == repository.resolve() else work.with_name(work.name + ".lock")


def _recover(repository: Path, work: Path, name: str) -> None:
    """Clear what an export killed outright (SIGKILL, power loss) left: a model set aside by the two-rename swap
    goes back if nothing replaced it; half-built staging folders go."""
    model_dir = repository / name
    for aside in sorted(work.glob(f".{name}{ASIDE}*")):
        if not model_dir.exists():
            os.rename(aside, model_dir)
        else:
            shutil.rmtree(aside, ignore_errors=True)
    for staging in work.glob(f".{name}{STAGING}*"):
        shutil.rmtree(staging, ignore_errors=True)


def _place(source: Path, dest: Path) -> None:
    """Hard-link when possible (ONNX files are hundreds of MB), else copy."""
    try:
        dest.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, dest)
