"""Which GPU an engine is built on: name, compute capability and (under MIG) the GPU instance profile.

An engine's tactics are chosen for one GPU model and, under MIG (Multi-Instance GPU), for the slice of it the build
ran on: a plan tuned on a ``1g.10gb`` instance is a different engine from one tuned on the whole GPU, so the MIG
profile is part of the cache key (TensorRT developer guide, "Engine compatibility": engines are specific to the
device and, under MIG, are built per GPU instance profile).
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass

from export.errors import ExportError

NVIDIA_SMI_TIMEOUT_S = 30


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str
    mig_profile: str = ""  # e.g. "1g.10gb" when the build runs on a MIG instance, else ""

    @property
    def product(self) -> str:
        """A path- and label-safe GPU product name, as GPU Feature Discovery writes ``nvidia.com/gpu.product``."""
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.name.strip()).strip("-")

    @property
    def cache_folder(self) -> str:
        """The engine-cache folder for this GPU: the product, plus the MIG profile when there is one."""
        return self.product + (f"-MIG-{self.mig_profile}" if self.mig_profile else "")


def parse_nvidia_smi(query_csv: str, listing: str) -> GpuInfo:
    """GPU 0 from ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` and ``nvidia-smi -L``.

    ``nvidia-smi -L`` lists MIG devices under their GPU as ``  MIG 1g.10gb Device 0: (UUID: MIG-...)``; a process
    that sees a MIG device (CUDA_VISIBLE_DEVICES=MIG-...) is built for that profile."""
    lines = [line for line in query_csv.strip().splitlines() if line.strip()]
    if not lines:
        raise ExportError("nvidia-smi listed no GPU.")
    name, cc = (part.strip() for part in lines[0].split(",")[:2])
    mig = re.search(r"^\s*MIG\s+(\S+)\s+Device\s+0\b", listing, re.MULTILINE)
    return GpuInfo(name, cc, mig.group(1) if mig else "")


@functools.lru_cache(maxsize=1)
def detect_gpu() -> GpuInfo:
    """GPU 0 of this machine (nvidia-smi, else torch.cuda); an error on a machine without one. Found once per
    process (an export asks up to three times per model: the early check, the build and the repository's sidecar
    check); a failure is not remembered."""
    try:
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=NVIDIA_SMI_TIMEOUT_S, check=False).stdout
        return parse_nvidia_smi(query, listing)
    except (OSError, subprocess.SubprocessError, ValueError, ExportError):
        pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return GpuInfo(torch.cuda.get_device_name(0), f"{major}.{minor}")
    except ImportError:
        pass
    raise ExportError("No NVIDIA GPU visible (nvidia-smi and torch.cuda found none): TensorRT engines are built "
                      "on the GPU they will run on.")


def parse_target_gpu(text: str) -> GpuInfo:
    """``NAME:CC`` or ``NAME:CC:MIG_PROFILE`` from the command line."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise ExportError(f"Bad --target-gpu `{text}`: use NAME:COMPUTE_CAPABILITY[:MIG_PROFILE], e.g. "
                          "'NVIDIA H100 80GB HBM3:9.0' or 'NVIDIA A100-SXM4-40GB:8.0:1g.5gb'.")
    return GpuInfo(*(p.strip() for p in parts))
