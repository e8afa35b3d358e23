"""The TensorRT code paths that need no TensorRT: sidecars, GPU matching, cache keys, profiles, CLI errors.
(Builds with a fake build step: tests/unit/test_engine_build.py.)"""

import json
import subprocess
import sys

import pytest

from export.config import ServingOptions
from export.errors import ExportError
from export.repository import write_model
from export.spec import ModelSpec, get_spec
from export.layout import sidecar_path
from export.tensorrt.build import profiles_for
from export.tensorrt.gpu import GpuInfo
from export.tensorrt.sidecar import Sidecar
from support import H100, WITHOUT_TENSORRT

L4 = GpuInfo("NVIDIA L4", "8.9")


def sidecar(model="unet", gpu=H100, trt="10.3.0"):
    return Sidecar(model=model, tensorrt_version=trt, gpu_name=gpu.name, gpu_product=gpu.product,
                   compute_capability=gpu.compute_capability, precision="fp16",
                   profiles=profiles_for(get_spec(model)), onnx_sha256="ab" * 32)


def test_gpu_product_is_label_safe():
    assert H100.product == "NVIDIA-H100-80GB-HBM3"


def test_sidecar_matches_only_its_gpu_and_tensorrt():
    s = sidecar()
    assert s.mismatch(H100, "10.3.0") is None
    assert s.mismatch(L4) == "built for NVIDIA H100 80GB HBM3, this GPU is NVIDIA L4; compute capability 9.0 vs 8.9"
    assert s.mismatch(H100, "10.7.0") == "TensorRT 10.3.0 vs 10.7.0"


def test_sidecar_round_trips_and_reports_a_missing_file(tmp_path):
    s = sidecar()
    s.write(tmp_path / "model.plan.json")
    assert Sidecar.read(tmp_path / "model.plan.json") == s
    with pytest.raises(ExportError, match=r"No sidecar .*other\.plan\.json.*Rebuild it"):
        Sidecar.read(tmp_path / "other.plan.json")


def test_profiles_come_from_the_spec():
    assert profiles_for(get_spec("unet")) == {"IMAGE": {"min": [1, 512, 512, 3], "opt": [8, 512, 512, 3],
                                                        "max": [8, 512, 512, 3]}}
    assert profiles_for(get_spec("maskrcnn")) == {"IMAGE": {"min": [1, 800, 800, 3], "opt": [4, 800, 800, 3],
                                                            "max": [8, 800, 800, 3]}}


def fake_plan(tmp_path, gpu=H100, model="unet"):
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not a real engine")
    sidecar(model, gpu).write(sidecar_path(plan))
    return plan


def test_repository_is_assembled_from_an_engine_built_for_the_target_gpu(tmp_path):
    plan = fake_plan(tmp_path)
    model_dir = write_model(get_spec("unet"), ServingOptions.for_target("tensorrt"), tmp_path / "repo",
                            plan_path=plan, target_gpu=H100)
    assert (model_dir / "1" / "model.plan").read_bytes() == b"not a real engine"
    assert json.loads((model_dir / "model.plan.json").read_text())["gpu_product"] == H100.product
    assert 'platform: "tensorrt_plan"' in (model_dir / "config.pbtxt").read_text()


def test_an_engine_for_another_gpu_is_refused_before_anything_is_written(tmp_path):
    plan = fake_plan(tmp_path, gpu=L4)
    with pytest.raises(ExportError, match=r"cannot serve on this GPU: built for NVIDIA L4, this GPU is NVIDIA H100"):
        write_model(get_spec("unet"), ServingOptions.for_target("tensorrt"), tmp_path / "repo", plan_path=plan,
                    target_gpu=H100)
    assert not (tmp_path / "repo").exists()


def test_an_engine_of_another_model_is_refused(tmp_path):
    plan = fake_plan(tmp_path, model="deeplabv3")
    with pytest.raises(ExportError, match=r"built for `deeplabv3`, not `unet`"):
        write_model(get_spec("unet"), ServingOptions.for_target("tensorrt"), tmp_path / "repo", plan_path=plan,
                    target_gpu=H100)


def test_spec_travels_as_json():
    spec = get_spec("maskrcnn").with_options(size=256, max_detections=7)
    assert ModelSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ExportError, match=r"Unknown spec fields \['future_field'\]"):
        ModelSpec.from_json(json.dumps({**json.loads(spec.to_json()), "future_field": 1}))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "export", *args], capture_output=True, text=True, timeout=120)


def test_cli_assembly_from_a_mismatched_plan_is_one_line_exit_1(tmp_path):
    plan = fake_plan(tmp_path, gpu=L4)
    proc = run_cli("unet", "--target", "tensorrt", "--plan", str(plan), "--target-gpu", "NVIDIA H100 80GB HBM3:9.0",
                   "--output", str(tmp_path / "repo"), "--work-dir", str(tmp_path / "build"), "--skip-parity",
                   "--no-progress", "--size", "64")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: Engine ")
    assert "cannot serve on this GPU" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["unett"], r"error: Unknown model `unett`\. Available: deeplabv3, deeplabv3_mobilenet, maskrcnn, u2netp, unet\."),
    (["unet", "--size", "100"], r"error: Bad size 100 for `unet`"),
    (["unet", "--target", "local", "--plan", "x.plan"], r"error: --plan and --target-gpu apply to --target tensorrt"),
    (["unet", "--checkpoint", "/nonexistent.pt", "--size", "64"], r"error: Checkpoint `/nonexistent\.pt` does not exist"),
    (["unet", "--target-gpu", "H100"], r"error: Bad --target-gpu `H100`: use NAME:COMPUTE_CAPABILITY"),
])
def test_cli_user_errors_are_one_line_and_exit_1(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert __import__("re").match(message, last), proc.stderr
    assert "Traceback" not in proc.stderr


@WITHOUT_TENSORRT
def test_tensorrt_target_without_tensorrt_fails_before_exporting(tmp_path):
    proc = run_cli("unet", "--target", "tensorrt", "--output", str(tmp_path / "repo"), "--work-dir",
                   str(tmp_path / "build"))
    assert proc.returncode == 1 and "`tensorrt` is needed for this step" in proc.stderr
    assert not (tmp_path / "build").exists(), "nothing should be exported when the engine cannot be built"


def test_argument_errors_exit_2_with_usage():
    proc = run_cli("unet", "--target", "torchscript")
    assert proc.returncode == 2 and "invalid choice: 'torchscript'" in proc.stderr


@WITHOUT_TENSORRT
def test_tensorrt_build_without_tensorrt_names_the_package(tmp_path):
    pytest.importorskip("onnx")
    from export.tensorrt.build import build_engine

    with pytest.raises(ExportError, match=r"`tensorrt` is needed for this step .* pip install 'tensorrt-cu12'"):
        build_engine(tmp_path / "model.onnx")


@WITHOUT_TENSORRT
def test_build_engine_command_without_tensorrt_is_one_line_exit_1(tmp_path):
    proc = run_cli("build-engine", "--source-repository", str(tmp_path), "--repository", str(tmp_path / "dst"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: `tensorrt` is needed for this step")
    assert not (tmp_path / "dst").exists()


def test_task_specific_options_go_to_the_models_they_are_meant_for():
    import argparse

    from export.__main__ import _resolve_specs

    def args(**kw):
        base = dict(size=None, num_classes=None, probs=False, max_detections=None, score_threshold=None,
                    max_batch_size=None)
        return argparse.Namespace(**{**base, **kw})

    unet, maskrcnn = _resolve_specs(["unet", "maskrcnn"], args(max_batch_size=2, max_detections=7, size=256))
    assert (unet.max_batch_size, unet.height, maskrcnn.max_batch_size, maskrcnn.max_detections) == (2, 256, 2, 7)
    with pytest.raises(ExportError, match=r"Bad max detections 7 for `unet`"):
        _resolve_specs(["unet", "deeplabv3"], args(max_detections=7))
