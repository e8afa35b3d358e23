"""TensorRT on a GPU: a strongly typed engine for every model, built from the same FP16 ONNX graph that
tests/export/test_fp16.py gates on CPU, passes the same accuracy gate against FP32 eager PyTorch; the engine cache
and the served directory work with the real build. Skipped (reason shown) where TensorRT or a GPU is missing."""

from __future__ import annotations

import pytest

from export.models import MODELS

pytestmark = pytest.mark.gpu
trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (use docker/engine-builder on a GPU node)")
pytest.importorskip("torch")

from support import sample_images  # noqa: E402


def gpu_or_skip():
    from export.errors import ExportError
    from export.tensorrt.gpu import detect_gpu

    try:
        return detect_gpu()
    except ExportError as exc:
        pytest.skip(str(exc))


def release_of_this_tensorrt() -> str:
    """The NGC release whose Triton serves this TensorRT: a table row with its version, else the release of the builder
    image this runs in (``$SEGSERVE_NGC_RELEASE``: NGC pairs the two images' TensorRT); skipped when neither."""
    import os

    from export.releases import BUILDER_RELEASE_ENV, releases
    from export.tensorrt.sidecar import same_tensorrt

    for release in releases().values():
        if release.tensorrt and same_tensorrt(trt.__version__, release.tensorrt):
            return release.ngc
    if os.environ.get(BUILDER_RELEASE_ENV):
        return os.environ[BUILDER_RELEASE_ENV]
    pytest.skip(f"TensorRT {trt.__version__} belongs to no release in export/data/releases.json: run tests/gpu in an "
                f"image FROM nvcr.io/nvidia/tensorrt:<yy.mm>-py3 with torch and the test extra, {BUILDER_RELEASE_ENV} "
                "set to that yy.mm")


@pytest.fixture(scope="session")
def engine_exports(request):
    """tests/conftest.py's ``fp16_exports`` (the graphs the CPU gate checks), built only once a GPU is found."""
    gpu_or_skip()
    return request.getfixturevalue("fp16_exports")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_strongly_typed_fp16_engine_passes_the_accuracy_gate(engine_exports, tmp_path, name):
    from export.parity import run_eager
    from export.precision import fp16_gate
    from export.tensorrt.build import BuildOptions, build_engine
    from export.tensorrt.verify import run_engine

    spec, module, onnx_path = engine_exports[name]
    result = build_engine(onnx_path, spec=spec, cache_dir=tmp_path,
                          options=BuildOptions(progress=False, release=release_of_this_tensorrt()))
    assert result.sidecar.precision == "fp16"
    images = sample_images(spec.height, spec.width, 1 if spec.task == "instance" else 4)
    (candidate,) = run_engine(result.plan_path, spec, [images])
    agreement = fp16_gate(spec.task, run_eager(module, spec, images), candidate, max_detections=spec.max_detections)
    print(f"{name}: TensorRT {trt.__version__} FP16 vs PyTorch FP32: {agreement.summary}")
    assert agreement.passed, agreement.summary


def test_second_build_is_a_cache_hit_and_build_engine_writes_a_served_directory(engine_exports, tmp_path):
    from export.config import parse_config
    from export.layout import CONFIG_FILE
    from export.tensorrt.cli import run_build_engine

    gpu = gpu_or_skip()
    onnx_path = engine_exports["deeplabv3_mobilenet"][2]
    release = release_of_this_tensorrt()
    argv = ["--onnx", str(onnx_path), "--repository", str(tmp_path / "repo"), "--cache-dir", str(tmp_path / "c"),
            "--no-progress", "--release", release]
    assert run_build_engine(argv) == 0 and run_build_engine(argv) == 0
    model_dir = tmp_path / "repo" / "deeplabv3_mobilenet"
    assert parse_config((model_dir / CONFIG_FILE).read_text()).platform == "tensorrt_plan"
    from export.tensorrt.sidecar import Sidecar

    sidecar = Sidecar.read(model_dir / "model.plan.json")
    assert sidecar.gpu_product == gpu.product and sidecar.tensorrt_version == trt.__version__
    assert len(list((tmp_path / "c").rglob("*.plan"))) == 1 and any((tmp_path / "c").rglob("timing.cache"))
