"""What an engine was built from and for (``model.plan.json`` beside every plan), and the checks that refuse an
engine on a GPU, TensorRT or Triton release it cannot run on.

A serialized plan deserialises only in the TensorRT version that built it (TensorRT developer guide, "Version
Compatibility": engines are not compatible across TensorRT versions unless built with ``VERSION_COMPATIBLE``) and only
on the GPU model it was tuned for. segserve refuses a mismatch instead of building ``VERSION_COMPATIBLE`` engines:
such a plan embeds a lean runtime that Triton only loads with ``--backend-config=tensorrt,version-compatible=true``,
and then "you must trust the models loaded in this mode, as version-compatible models include a lean runtime which
gets deserialized and executed by Triton" (triton-inference-server/tensorrt_backend README.md and src/tensorrt.cc,
main at e2ef6d7, 2026-07) -- a writable engine cache shared by pods would become a code-execution path into Triton.
Mask R-CNN also imports RoiAlign as TensorRT's ``ROIAlign_TRT`` plugin (onnx-tensorrt onnxOpImporters.cpp, 10.1-GA),
which a version-compatible build has to ship inside the plan. Building in the builder image of the serving Triton
image's yy.mm (``export/data/releases.json``, ``docker/engine-builder``) costs nothing and keeps the plain engine.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError
from export.layout import sidecar_path
from export.tensorrt.gpu import GpuInfo


@dataclass(frozen=True)
class Sidecar:
    model: str
    tensorrt_version: str
    gpu_name: str
    gpu_product: str
    compute_capability: str
    precision: str
    profiles: dict
    onnx_sha256: str
    mig_profile: str = ""
    release: str = ""  # the NGC yy.mm the engine was built for ("" when built without --release)
    cache_key: str = ""
    built_at: str = ""
    build_seconds: float = 0.0

    def write(self, path: Path) -> None:
        from export.tensorrt.cache import atomic_write

        atomic_write(path, (json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n").encode())

    @classmethod
    def read(cls, path: Path) -> Sidecar:
        if not path.is_file():
            raise ExportError(f"No sidecar {path}: the engine's GPU and TensorRT version are unknown. Rebuild it "
                              "with `python -m export build-engine`.")
        try:
            return cls(**json.loads(path.read_text()))
        except (TypeError, ValueError) as exc:
            raise ExportError(f"Sidecar {path} is unreadable: {exc}") from None

    def mismatch(self, gpu: GpuInfo, tensorrt_version: str | None = None) -> str | None:
        """Why this engine cannot run on ``gpu`` (with ``tensorrt_version``), or None when it can."""
        problems = []
        if self.gpu_product != gpu.product:
            problems.append(f"built for {self.gpu_name}, this GPU is {gpu.name}")
        if self.compute_capability != gpu.compute_capability:
            problems.append(f"compute capability {self.compute_capability} vs {gpu.compute_capability}")
        if self.mig_profile != gpu.mig_profile:
            problems.append(f"MIG profile {self.mig_profile or 'none'} vs {gpu.mig_profile or 'none'}")
        if tensorrt_version and self.tensorrt_version != tensorrt_version:
            problems.append(f"TensorRT {self.tensorrt_version} vs {tensorrt_version}")
        return "; ".join(problems) or None


def check_plan_for_gpu(plan_path: Path, gpu: GpuInfo | None = None) -> Sidecar:
    """The plan's sidecar, after checking it matches ``gpu`` (default: this machine's GPU 0)."""
    from export.tensorrt.gpu import detect_gpu

    sidecar = Sidecar.read(sidecar_path(plan_path))
    gpu = gpu or detect_gpu()
    problem = sidecar.mismatch(gpu)
    if problem:
        raise ExportError(f"Engine {plan_path} cannot serve on this GPU: {problem}. Rebuild it here with "
                          "`python -m export build-engine`.")
    return sidecar


def same_tensorrt(built: str, serving: str) -> bool:
    """Whether an engine built by TensorRT ``built`` deserialises in TensorRT ``serving``: the same major.minor.patch
    (the fourth, build number, does not change the plan format)."""
    return built.split(".")[:3] == serving.split(".")[:3]


def check_release(tensorrt_version: str, ngc: str | None, builder_release: str | None = None) -> str | None:
    """Refuse a TensorRT that is not the one in the Triton image of NGC release ``ngc`` (None: the default release).

    Where the table does not list that release's TensorRT yet, what is left is the builder image of the same release
    (``builder_release``, default ``$SEGSERVE_NGC_RELEASE``, which that image sets): NGC pairs the two images'
    TensorRT. Inside it this returns a note saying so (trusting the image's variable); anywhere else it refuses, since
    a plan from another TensorRT does not deserialise in that Triton. Returns None when the versions match; raises
    ExportError otherwise."""
    import os

    from export.releases import BUILDER_RELEASE_ENV, get_release, releases

    release = get_release(ngc)
    if release.tensorrt is None:
        builder_release = builder_release if builder_release is not None else os.environ.get(BUILDER_RELEASE_ENV)
        if builder_release == release.ngc:
            return (f"TensorRT {tensorrt_version} taken as NGC {release.ngc}'s: this runs in that release's builder "
                    f"image (${BUILDER_RELEASE_ENV}={builder_release}), and NGC ships it with the Triton image's "
                    "TensorRT; export/data/releases.json does not list the version yet.")
        verified = ", ".join(r.ngc for r in releases().values() if r.tensorrt)
        raise ExportError(
            f"export/data/releases.json does not list the TensorRT of NGC {release.ngc} yet, so TensorRT "
            f"{tensorrt_version} here cannot be checked against {release.triton_image}: build in that release's "
            f"builder image (docker/engine-builder, FROM {release.builder_base_image}, where NGC pairs the versions) "
            f"or pass the --release of a verified row ({verified}).")
    if not same_tensorrt(tensorrt_version, release.tensorrt):
        raise ExportError(
            f"TensorRT {tensorrt_version} here, but {release.triton_image} (NGC {release.ngc}) serves with TensorRT "
            f"{release.tensorrt}: its engines would not deserialise there. Build in {release.builder_base_image} "
            f"(docker/engine-builder) or pass the --release this TensorRT belongs to.")
    return None
