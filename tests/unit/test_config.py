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
    assert "dynamic_batching" not in config_dict(get_spec("maskrcnn"), ServingOptions.for_target("local"))


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
