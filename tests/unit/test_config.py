"""config.pbtxt generation, pinned by golden files (compared after parsing, so formatting does not matter)."""

from pathlib import Path

import pytest

from export.config import ServingOptions, config_dict, parse_config, render_config
from export.errors import ExportError
from export.spec import SPECS, get_spec

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
CASES = [
    ("deeplabv3", ServingOptions.for_target("local")),
    ("maskrcnn", ServingOptions.for_target("local")),
    ("unet", ServingOptions.for_target("onnxruntime")),
    ("deeplabv3_mobilenet", ServingOptions.for_target("onnxruntime", device="cpu")),
    ("deeplabv3", ServingOptions.for_target("onnxruntime", trt_accelerator=True)),
    ("unet", ServingOptions.for_target("tensorrt")),
    ("maskrcnn", ServingOptions.for_target("tensorrt")),
    ("maskrcnn", ServingOptions.for_target("onnxruntime", trt_accelerator=True)),
]


def golden_name(model: str, options: ServingOptions) -> str:
    flavour = f"{options.target}-{options.device}" + ("-trt" if options.trt_accelerator else "")
    return f"{model}.{flavour}.pbtxt"


@pytest.mark.parametrize(("model", "options"), CASES, ids=[golden_name(*c) for c in CASES])
def test_config_matches_golden(model, options):
    golden = GOLDEN / golden_name(model, options)
    generated = parse_config(render_config(get_spec(model), options))
    assert generated == parse_config(golden.read_text()), f"regenerate {golden} if the change is intended"


@pytest.mark.parametrize("target", ["local", "onnxruntime", "tensorrt"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_target_serves_the_same_tensors(name, target):
    """A client cannot tell the targets apart: names, dtypes, dims and batch size come from the one spec."""
    spec = get_spec(name)
    config = parse_config(render_config(spec, ServingOptions.for_target(target)))
    assert config.name == name and config.max_batch_size == spec.max_batch_size
    got = [(t.name, t.data_type, tuple(t.dims)) for t in (*config.input, *config.output)]
    from tritonclient.grpc import model_config_pb2 as pb

    want = [(t.name, pb.DataType.Value(f"TYPE_{t.dtype}"), t.dims) for t in (*spec.inputs, *spec.outputs)]
    assert got == want


def test_dynamic_batching_uses_the_spec_preferred_sizes():
    config = config_dict(get_spec("unet"), ServingOptions.for_target("tensorrt"))
    assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    maskrcnn = get_spec("maskrcnn")
    assert config_dict(maskrcnn, ServingOptions.for_target("local"))["dynamic_batching"]["preferred_batch_size"] == [4]
    assert "dynamic_batching" not in config_dict(maskrcnn.with_options(max_batch_size=1),
                                                 ServingOptions.for_target("local"))


def test_tensorrt_target_is_a_plan_on_gpu():
    config = parse_config(render_config(get_spec("unet"), ServingOptions.for_target("tensorrt")))
    assert config.platform == "tensorrt_plan" and config.instance_group[0].kind == 1  # KIND_GPU


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": "tensorrt", "device": "cpu"}, r"tensorrt target runs on GPU only"),
    ({"target": "local", "device": "gpu"}, r"local target is the CPU python backend"),
    ({"target": "onnxruntime", "device": "cpu", "trt_accelerator": True}, r"--trt-accelerator applies to"),
    ({"target": "torchscript"}, r"Unknown target `torchscript`\. Available: onnxruntime, tensorrt, local\."),
    ({"target": "local", "device": "cpu", "instances": 0}, r"Bad instance count 0"),
])
def test_bad_serving_options_are_rejected(kwargs, message):
    with pytest.raises(ExportError, match=message):
        ServingOptions(**kwargs)


def test_ort_tensorrt_accelerator_has_spec_profiles_and_a_persistent_cache():
    """Without profiles ONNX Runtime's TensorRT provider rebuilds its engine whenever dynamic batching forms a larger
    batch than it has seen; without a persistent cache every pod start rebuilds (issue #7)."""
    from export.layout import ORT_TRT_CACHE_DIR

    config = config_dict(get_spec("unet"), ServingOptions.for_target("onnxruntime", trt_accelerator=True))
    (trt,) = config["optimization"]["execution_accelerators"]["gpu_execution_accelerator"]
    params = trt["parameters"]
    assert (params["trt_profile_min_shapes"], params["trt_profile_opt_shapes"], params["trt_profile_max_shapes"]) == (
        "IMAGE:1x512x512x3", "IMAGE:8x512x512x3", "IMAGE:8x512x512x3")
    assert params["trt_engine_cache_path"] == params["trt_timing_cache_path"] == ORT_TRT_CACHE_DIR
    assert not ORT_TRT_CACHE_DIR.startswith("/tmp")


@pytest.mark.parametrize(("options", "warm"), [
    (ServingOptions.for_target("tensorrt"), True),
    (ServingOptions.for_target("onnxruntime"), True),
    (ServingOptions.for_target("onnxruntime", device="cpu"), False),
    (ServingOptions.for_target("local"), False),
])
def test_gpu_models_warm_up_at_load_with_batch_1_and_the_max_batch(options, warm):
    config = parse_config(render_config(get_spec("deeplabv3"), options))
    assert [(w.batch_size, list(w.inputs["IMAGE"].dims), w.inputs["IMAGE"].random_data)
            for w in config.model_warmup] == ([(1, [520, 520, 3], True), (8, [520, 520, 3], True)] if warm else [])
