"""Engine builds without TensorRT: the build step is a fake (a function returning bytes, or a recording stand-in
for the ``tensorrt`` module); everything around it is real: cache keys, locks, atomic writes, sidecars, release
checks and the complete served directory ``build-engine`` writes."""

import json
import threading
import time
import types

import pytest

from export.config import parse_config
from export.errors import ExportError
from export.layout import ARTIFACTS, CONFIG_FILE, LABELS_FILE, sidecar_path
from export.spec import get_spec
from export.tensorrt import cache
from export.tensorrt.build import BuildOptions, build_engine
from export.tensorrt.gpu import GpuInfo, parse_nvidia_smi
from export.tensorrt.sidecar import check_release
from support import H100

onnx = pytest.importorskip("onnx")

H100_MIG = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "1g.10gb")
TRT = "10.5.0"  # the TensorRT of NGC 24.10 in export/data/releases.json
RELEASE = "24.10"


def tiny_onnx(path, model="unet", precision="fp16", size=64):
    """A valid ONNX file carrying a segserve spec and precision (the fake build never looks at the graph)."""
    from onnx import TensorProto, helper

    from export.metadata import PRECISION_KEY, SPEC_KEY, set_metadata

    spec = get_spec(model).with_options(size=size)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(graph)
    set_metadata(m, {SPEC_KEY: spec.to_json(), PRECISION_KEY: precision})
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))
    return path


class FakeBuild:
    """The build step: returns a deterministic 'plan', counts calls, optionally takes its time."""

    def __init__(self, seconds=0.0):
        self.calls = 0
        self.seconds = seconds

    def __call__(self, onnx_path, spec, options, timing_cache):
        self.calls += 1
        time.sleep(self.seconds)
        return f"plan of {spec.name}".encode()


def build(tmp_path, onnx_path, builder, **kw):
    kw.setdefault("options", BuildOptions(release=RELEASE, progress=False))
    return build_engine(onnx_path, cache_dir=tmp_path / "cache", builder=builder, tensorrt_version=TRT,
                        gpu=kw.pop("gpu", H100), **kw)


def test_second_build_is_a_cache_hit_and_the_sidecar_says_what_was_built(tmp_path):
    src = tiny_onnx(tmp_path / "unet.onnx")
    fake = FakeBuild()
    first = build(tmp_path, src, fake)
    second = build(tmp_path, src, fake, plan_path=tmp_path / "out" / "model.plan")
    assert (first.cached, second.cached, fake.calls) == (False, True, 1)
    assert (tmp_path / "out" / "model.plan").read_bytes() == b"plan of unet"
    s = json.loads(sidecar_path(tmp_path / "out" / "model.plan").read_text())
    assert (s["precision"], s["release"], s["tensorrt_version"], s["gpu_product"]) == ("fp16", RELEASE, TRT,
                                                                                       H100.product)
    assert s["profiles"]["IMAGE"]["max"] == [8, 64, 64, 3] and len(s["cache_key"]) == 24


def test_cache_key_covers_precision_workspace_segserve_version_tensorrt_and_mig():
    base = dict(precision="fp16", workspace_bytes=1 << 30, tensorrt_version=TRT, gpu=H100, segserve="0.1.0")
    key = cache.cache_key("ab" * 32, **base)
    for change in ({"precision": "fp32"}, {"workspace_bytes": 2 << 30}, {"segserve": "0.2.0"},
                   {"tensorrt_version": "10.5.1"}, {"gpu": H100_MIG}, {"gpu": GpuInfo("NVIDIA L4", "8.9")}):
        assert cache.cache_key("ab" * 32, **{**base, **change}) != key, change
    assert cache.cache_key("cd" * 32, **base) != key


def test_a_mig_instance_gets_its_own_cache_folder_and_engines(tmp_path):
    src = tiny_onnx(tmp_path / "unet.onnx")
    fake = FakeBuild()
    whole, mig = build(tmp_path, src, fake), build(tmp_path, src, fake, gpu=H100_MIG)
    assert fake.calls == 2 and whole.plan_path.parent != mig.plan_path.parent
    assert mig.plan_path.parts[-3] == "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb" and mig.sidecar.mig_profile == "1g.10gb"


def test_mig_profile_is_read_from_nvidia_smi():
    query = "NVIDIA A100-SXM4-40GB, 8.0\n"
    listing = ("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n"
               "  MIG 1g.5gb      Device  0: (UUID: MIG-2)\n")
    assert parse_nvidia_smi(query, listing) == GpuInfo("NVIDIA A100-SXM4-40GB", "8.0", "1g.5gb")
    assert parse_nvidia_smi(query, "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1)\n").mig_profile == ""


def test_concurrent_builds_of_one_engine_build_it_once(tmp_path):
    """Two pods sharing the cache: the second waits on the lock and then finds the plan cached."""
    src = tiny_onnx(tmp_path / "unet.onnx")
    fake = FakeBuild(seconds=0.5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(build(tmp_path, src, fake))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert fake.calls == 1 and sorted(r.cached for r in results) == [False, True]


def test_a_lock_held_elsewhere_times_out_with_a_clear_message(tmp_path):
    lock = tmp_path / "x.lock"
    with cache.file_lock(lock, 1):
        with pytest.raises(ExportError, match=r"Waited 0 s for the lock .*x\.lock: another build"):
            with cache.file_lock(lock, 0.1):
                pass
    with cache.file_lock(lock, 0.1):  # released: free again
        pass


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_failure(tmp_path):
    target = tmp_path / "model.plan"
    cache.atomic_write(target, b"old")
    with pytest.raises(TypeError):
        cache.atomic_write(target, object())  # fails mid-write
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.plan"]


def test_engines_are_refused_for_a_triton_with_another_tensorrt(tmp_path):
    src = tiny_onnx(tmp_path / "unet.onnx")
    with pytest.raises(ExportError, match=r"TensorRT 10\.7\.0 here, but nvcr\.io/nvidia/tritonserver:24\.10-py3 "
                                          r"\(NGC 24\.10\) serves with TensorRT 10\.5\.0"):
        build_engine(src, cache_dir=tmp_path, builder=FakeBuild(), tensorrt_version="10.7.0", gpu=H100,
                     options=BuildOptions(release="24.10"))
    assert not any(tmp_path.rglob("*.plan"))
    assert check_release("10.5.0.11", "24.10") is None  # the build number does not change the plan format


def unverified_release() -> str:
    from export.releases import releases

    unknown = [r.ngc for r in releases().values() if r.tensorrt is None]
    if not unknown:
        pytest.skip("every release's TensorRT is known")
    return unknown[-1]


def test_a_release_whose_tensorrt_is_not_in_the_table_is_refused_outside_its_builder_image(tmp_path, monkeypatch):
    from export.releases import BUILDER_RELEASE_ENV

    ngc = unverified_release()
    monkeypatch.delenv(BUILDER_RELEASE_ENV, raising=False)
    message = (rf"does not list the TensorRT of NGC {ngc} yet, so TensorRT 10\.5\.0 here cannot be checked against "
               rf"nvcr\.io/nvidia/tritonserver:{ngc}-py3: build in that release's builder image .*FROM "
               rf"nvcr\.io/nvidia/tensorrt:{ngc}-py3.* or pass the --release of a verified row \(24\.10, 24\.12")
    with pytest.raises(ExportError, match=message):
        check_release("10.5.0", ngc)
    with pytest.raises(ExportError, match=message):  # the builder image of another release proves nothing
        check_release("10.5.0", ngc, builder_release="24.10")
    with pytest.raises(ExportError, match=message):  # refused before any work
        build_engine(tiny_onnx(tmp_path / "unet.onnx"), cache_dir=tmp_path, builder=FakeBuild(),
                     tensorrt_version="10.5.0", gpu=H100, options=BuildOptions(release=ngc))
    assert not any(tmp_path.rglob("*.plan"))


def test_inside_its_builder_image_an_unlisted_release_builds_with_a_note(tmp_path, monkeypatch, caplog):
    import logging

    from export.releases import BUILDER_RELEASE_ENV

    ngc = unverified_release()
    assert f"taken as NGC {ngc}'s: this runs in that release's builder image" in check_release("10.5.0", ngc, ngc)
    monkeypatch.setenv(BUILDER_RELEASE_ENV, ngc)
    with caplog.at_level(logging.INFO):
        result = build_engine(tiny_onnx(tmp_path / "unet.onnx"), cache_dir=tmp_path / "c", builder=FakeBuild(),
                              tensorrt_version="10.5.0", gpu=H100, options=BuildOptions(release=ngc, progress=False))
    assert result.sidecar.tensorrt_version == "10.5.0" and f"${BUILDER_RELEASE_ENV}={ngc}" in caplog.text


def onnxruntime_repository(root, models=("unet", "deeplabv3")):
    for name in models:
        tiny_onnx(root / name / "1" / ARTIFACTS["onnxruntime"], model=name)
        (root / name / CONFIG_FILE).write_text("# an onnxruntime config\n")
    return root


def test_build_engine_writes_complete_served_tensorrt_directories(tmp_path):
    from export.tensorrt.cli import run_build_engine

    src = onnxruntime_repository(tmp_path / "src")
    dst = tmp_path / "dst"
    fake = FakeBuild()
    argv = ["--source-repository", str(src), "--repository", str(dst), "--cache-dir", str(tmp_path / "cache"),
            "--release", RELEASE, "--no-progress"]
    assert run_build_engine(argv, builder=fake, tensorrt_version=TRT, gpu=H100) == 0
    for name in ("unet", "deeplabv3"):
        spec = get_spec(name).with_options(size=64)
        model_dir = dst / name
        assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()) == [
            "1/model.plan", CONFIG_FILE, LABELS_FILE, "model.plan.json"]
        config = parse_config((model_dir / CONFIG_FILE).read_text())
        assert config.platform == "tensorrt_plan" and config.name == name
        assert config.max_batch_size == spec.max_batch_size and list(config.input[0].dims) == [64, 64, 3]
        assert (model_dir / LABELS_FILE).read_text().splitlines() == list(spec.class_names)
        assert (model_dir / "1" / "model.plan").read_bytes() == f"plan of {name}".encode()
        assert json.loads((model_dir / "model.plan.json").read_text())["model"] == name
    # A second run (another pod) builds nothing and rewrites the same directories.
    assert run_build_engine(argv, builder=fake, tensorrt_version=TRT, gpu=H100) == 0 and fake.calls == 2


@pytest.mark.parametrize(("setup", "args", "message"), [
    (lambda d: None, ["--source-repository", "{d}/missing"], r"Source repository .*missing does not exist"),
    (lambda d: (d / "empty").mkdir(), ["--source-repository", "{d}/empty"], r"No ONNX files to build"),
    (lambda d: onnxruntime_repository(d / "src"), ["--source-repository", "{d}/src", "--repository", "{d}/src/."],
     r"--repository .*src is the source repository"),
    (lambda d: tiny_onnx(d / "a.onnx", precision="fp32"), ["--onnx", "{d}/a.onnx"],
     r"a\.onnx is an fp32 graph, --precision says fp16: re-export it with `python -m export unet --precision fp16`"),
    (lambda d: (tiny_onnx(d / "a.onnx"), tiny_onnx(d / "b.onnx")), ["--onnx", "{d}/a.onnx", "--onnx", "{d}/b.onnx"],
     r"Two sources for `unet`"),
])
def test_build_engine_refuses_bad_sources_before_building(tmp_path, setup, args, message):
    from export.tensorrt.cli import run_build_engine

    setup(tmp_path)
    fake = FakeBuild()
    argv = ["--repository", str(tmp_path / "dst"), "--release", RELEASE] + [a.format(d=tmp_path) for a in args]
    with pytest.raises(ExportError, match=message):
        run_build_engine(argv, builder=fake, tensorrt_version=TRT, gpu=H100)
    assert fake.calls == 0 and not (tmp_path / "dst").exists()


# --- the TensorRT calls themselves, against a recording stand-in for the `tensorrt` module ---------------------

def fake_tensorrt(timing_accepts=(True,), disk_combine=True):
    """Just the TensorRT 10 Python API surface build_serialized uses, recording every call."""
    log = []
    accepts = list(timing_accepts)

    class Cache:
        def __init__(self, data):
            self.data = data

        def combine(self, other, ignore_mismatch):
            log.append(("combine", ignore_mismatch))
            self.data += b"+" + other.data
            return disk_combine

        def serialize(self):
            return self.data

    class Config:
        progress_monitor = None

        def set_memory_pool_limit(self, pool, size): log.append(("pool", pool, size))
        def set_flag(self, flag): log.append(("set_flag", flag))
        def clear_flag(self, flag): log.append(("clear_flag", flag))
        def add_optimization_profile(self, profile): log.append(("profile", profile.shapes))
        def create_timing_cache(self, data): return Cache(bytes(data) or b"new")

        def set_timing_cache(self, cache_, ignore_mismatch):
            log.append(("set_timing_cache", cache_.data, ignore_mismatch))
            self.cache = cache_
            return accepts.pop(0) if accepts else True

        def get_timing_cache(self): return self.cache

    class Profile:
        def __init__(self): self.shapes = {}
        def set_shape(self, name, lo, opt, hi): self.shapes[name] = (list(lo), list(opt), list(hi))

    class Network:
        num_layers = 0

    class Builder:
        def __init__(self, logger): pass
        def create_network(self, flags): log.append(("create_network", flags)); return Network()
        def create_builder_config(self): return Config()
        def create_optimization_profile(self): return Profile()
        def build_serialized_network(self, network, config): return b"engine"

    class Parser:
        num_errors = 0
        def __init__(self, network, logger): pass
        def parse_from_file(self, path): return True

    enum = lambda **kw: types.SimpleNamespace(**kw)  # noqa: E731
    trt = types.SimpleNamespace(
        __version__=TRT, Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None}),
        init_libnvinfer_plugins=lambda logger, ns: True, Builder=Builder, OnnxParser=Parser,
        NetworkDefinitionCreationFlag=enum(EXPLICIT_BATCH=0, STRONGLY_TYPED=1),
        BuilderFlag=enum(FP16=0, TF32=7, OBEY_PRECISION_CONSTRAINTS=11), MemoryPoolType=enum(WORKSPACE=0))
    return trt, log


def run_builder(monkeypatch, tmp_path, trt, timing=None):
    import sys

    from export.tensorrt.build import build_serialized

    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    timing = timing or tmp_path / "timing.cache"
    spec = get_spec("unet").with_options(size=64)
    return build_serialized(tiny_onnx(tmp_path / "u.onnx"), spec, BuildOptions(progress=False), timing)


def test_the_network_is_strongly_typed_with_tf32_off_and_no_precision_flags(monkeypatch, tmp_path):
    trt, log = fake_tensorrt()
    assert run_builder(monkeypatch, tmp_path, trt) == b"engine"
    assert ("create_network", 1 << 1) in log
    assert ("clear_flag", trt.BuilderFlag.TF32) in log
    assert not [entry for entry in log if entry[0] == "set_flag"], "precision comes from the graph, not flags"
    assert ("profile", {"IMAGE": ([1, 64, 64, 3], [8, 64, 64, 3], [8, 64, 64, 3])}) in log


def test_a_timing_cache_trt_refuses_is_replaced_by_an_empty_one(monkeypatch, tmp_path):
    (tmp_path / "timing.cache").write_bytes(b"from another gpu")
    trt, log = fake_tensorrt(timing_accepts=(False, True))
    run_builder(monkeypatch, tmp_path, trt)
    assert [e[1] for e in log if e[0] == "set_timing_cache"] == [b"from another gpu", b"new"]


def test_this_builds_timing_cache_is_combined_into_the_one_on_disk(monkeypatch, tmp_path):
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"disk")
    trt, log = fake_tensorrt()
    run_builder(monkeypatch, tmp_path, trt, timing)
    assert ("combine", False) in log and timing.read_bytes() == b"disk+disk"
    assert sorted(p.name for p in tmp_path.iterdir() if "timing" in p.name) == ["timing.cache", "timing.cache.lock"]


def test_builder_image_is_the_tensorrt_image_of_the_default_release():
    """docker/engine-builder builds on the release table's builder image, so its TensorRT is the serving Triton's."""
    import re

    from export.releases import default_release
    from support import ROOT

    text = (ROOT / "docker" / "engine-builder" / "Dockerfile").read_text()
    default = re.search(r"^ARG NGC_RELEASE=(\S+)$", text, re.MULTILINE).group(1)
    base = re.search(r"^FROM (\S+)$", text, re.MULTILINE).group(1).replace("${NGC_RELEASE}", default)
    release = default_release()
    assert (default, base) == (release.ngc, release.builder_base_image)
    assert "ENV SEGSERVE_NGC_RELEASE=${NGC_RELEASE}" in text


def test_the_builder_images_release_is_build_engines_default(monkeypatch):
    import importlib

    import export.tensorrt.cli as cli

    monkeypatch.setenv(cli.BUILDER_RELEASE_ENV, "24.10")
    assert importlib.reload(cli).build_engine_parser().parse_args(["--repository", "x"]).release == "24.10"
    monkeypatch.delenv(cli.BUILDER_RELEASE_ENV)
    assert importlib.reload(cli).build_engine_parser().parse_args(["--repository", "x"]).release is None
