"""TensorRT accuracy gate: FP16 engines vs ONNX Runtime FP32. Runs where TensorRT and a GPU exist; skipped
elsewhere with the reason shown."""

from pathlib import Path

import pytest

from export.models import MODELS

pytestmark = pytest.mark.gpu
trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt-cu12 on a GPU node)")


def gpu_or_skip():
    from export.errors import ExportError
    from export.tensorrt import detect_gpu

    try:
        return detect_gpu()
    except ExportError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fp16_engine_passes_the_accuracy_gate(exported, tmp_path, name):
    gpu_or_skip()
    from export.tensorrt_cli import verify

    agreement = verify(name, onnx_path=exported[name].onnx_path, cache_dir=tmp_path / "engines", images=3)
    assert agreement.passed, agreement.summary


def test_second_build_is_a_cache_hit_and_sidecar_names_this_gpu(exported, tmp_path):
    gpu = gpu_or_skip()
    from export.tensorrt import BuildOptions, build_engine

    onnx_path: Path = exported["deeplabv3_mobilenet"].onnx_path
    first = build_engine(onnx_path, options=BuildOptions(progress=False), cache_dir=tmp_path)
    second = build_engine(onnx_path, options=BuildOptions(progress=False), cache_dir=tmp_path,
                          plan_path=tmp_path / "out" / "model.plan")
    assert not first.cached and second.cached
    assert second.sidecar.gpu_product == gpu.product and second.sidecar.tensorrt_version == trt.__version__
    assert (tmp_path / "out" / "model.plan.json").is_file()
    assert any(tmp_path.rglob("timing.cache"))
