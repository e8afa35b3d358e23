"""The engine cache a chart shares between pods: keys, a file lock around each build, atomic writes.

Layout (``--cache-dir``)::

    <cache>/<gpu product>[-MIG-<profile>]/trt-<version>/<key>.plan (+ .plan.json sidecar)
    <cache>/<gpu product>[-MIG-<profile>]/trt-<version>/timing.cache   (combined from every build there)
    <cache>/.../<key>.lock, timing.cache.lock                          (fcntl locks; files stay, locks do not)

``key`` hashes everything that changes the engine: the ONNX file's sha256, the build options (precision,
workspace), the segserve version (its build code), the TensorRT version, the GPU and its MIG profile. Two pods that
need the same engine wait for one build (the lock) and the second finds it cached; every file is written under a
unique temporary name and renamed into place (``os.replace`` is atomic on POSIX), so a reader never sees half a plan.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from export import locks
from export.locks import atomic_write  # noqa: F401 (the cache's writes: cache.atomic_write)
from export.tensorrt.gpu import GpuInfo

TIMING_CACHE = "timing.cache"


def segserve_version() -> str:
    try:
        from importlib.metadata import version

        return version("segserve")
    except Exception:  # not installed as a distribution (a source checkout on PYTHONPATH)
        return "source"


def cache_key(onnx_sha: str, *, precision: str, workspace_bytes: int, tensorrt_version: str, gpu: GpuInfo,
              segserve: str | None = None) -> str:
    """A short hex key over everything that changes the engine built from one ONNX file."""
    fields = {"onnx": onnx_sha, "precision": precision, "workspace": workspace_bytes, "tensorrt": tensorrt_version,
              "gpu": gpu.product, "cc": gpu.compute_capability, "mig": gpu.mig_profile,
              "segserve": segserve if segserve is not None else segserve_version()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def cache_folder(cache_dir: Path, gpu: GpuInfo, tensorrt_version: str) -> Path:
    return cache_dir / gpu.cache_folder / f"trt-{tensorrt_version}"


def plan_path(cache_dir: Path, gpu: GpuInfo, tensorrt_version: str, key: str) -> Path:
    return cache_folder(cache_dir, gpu, tensorrt_version) / f"{key}.plan"


def timing_cache_path(cache_dir: Path, gpu: GpuInfo, tensorrt_version: str) -> Path:
    return cache_folder(cache_dir, gpu, tensorrt_version) / TIMING_CACHE


def file_lock(path: Path, timeout_s: float):
    """The lock around one engine build, waited for at most ``timeout_s`` seconds."""
    return locks.file_lock(path, timeout_s, busy="another build of this engine is still running. Try again later or "
                                                 "raise --lock-timeout.")


def timing_cache_lock(path: Path, timeout_s: float):
    """The lock around merging into the timing cache at ``path`` (``timing.cache.lock`` beside it)."""
    return locks.file_lock(path.with_name(path.name + ".lock"), timeout_s,
                           busy="another build is merging into this timing cache. Try again later or raise "
                                "--lock-timeout.")
