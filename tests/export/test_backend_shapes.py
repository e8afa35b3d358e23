"""Every model x target: the artifact's I/O shapes satisfy the rule the Triton backend applies to its config, so no
model can drift into one that does not load (Mask R-CNN's ONNX once had a static batch dim with max_batch_size 1,
which the onnxruntime backend refuses).

The rule, as the backends implement it (``CompareDimsSupported``):
- onnxruntime_backend ``src/onnxruntime_utils.cc`` (main at 00fd3e8, 2026-06): when ``max_batch_size > 0`` every
  input and output must have at least one dim and dim 0 must be -1 (dynamic); the other dims must equal the
  config's dims wherever the model's dim is not -1 (exactly, for inputs and outputs alike);
- tensorrt_backend ``src/tensorrt_utils.cc`` (main at e2ef6d7, 2026-07): the engine's rank is 1 + the config's rank
  and static dims equal; the batch a model accepts is the largest dim 0 of its optimisation profiles
  (``src/model_state.cc`` GetMaxSupportedBatchSize), which must cover the config's max_batch_size.
The TensorRT engine's I/O shapes are the ONNX graph's (the parser maps a symbolic dim to -1) and its profiles are
``export.tensorrt.build.profiles_for``; the ``local`` target runs the same ONNX file, checked by the onnxruntime rule.
"""

import pytest

from export.config import TARGETS, ServingOptions, config_proto
from export.models import MODELS

onnx = pytest.importorskip("onnx")


def onnx_shapes(path):
    graph = onnx.load(str(path), load_external_data=False).graph
    return {v.name: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
            for v in (*graph.input, *graph.output)}


def backend_problems(config, shapes: dict[str, list[int]]) -> list[str]:
    problems = []
    batching = config.max_batch_size > 0
    for tensor in (*config.input, *config.output):
        model = shapes.get(tensor.name)
        if model is None:
            problems.append(f"{tensor.name}: not in the model")
            continue
        want = ([-1] if batching else []) + list(tensor.dims)
        if batching and (not model or model[0] != -1):
            problems.append(f"{tensor.name}: max_batch_size {config.max_batch_size} > 0 needs a dynamic dim 0, "
                            f"the model has {model}")
        elif len(model) != len(want) or any(m != -1 and m != w for m, w in zip(model, want)):
            problems.append(f"{tensor.name}: model shape {model} vs config {want}")
    return problems


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_artifact_shapes_satisfy_the_triton_backend_rule(exported, name, target):
    from export.tensorrt.build import profiles_for

    item = exported[name]
    options = ServingOptions.for_target(target)
    config = config_proto(item.spec, options)
    shapes = onnx_shapes(item.onnx_path)
    assert not backend_problems(config, shapes)
    if target == "tensorrt":
        for tensor, profile in profiles_for(item.spec).items():
            assert profile["min"][0] == 1 and profile["max"][0] >= config.max_batch_size
            for key in ("min", "opt", "max"):
                assert profile[key][1:] == shapes[tensor][1:], (tensor, key)


def test_the_rule_catches_a_static_batch_dim():
    """A static batch dim (the old Mask R-CNN export had IMAGE [1, 800, 800, 3]) under a batching config."""
    from export.spec import get_spec

    spec = get_spec("maskrcnn")
    config = config_proto(spec, ServingOptions.for_target("onnxruntime"))
    static = {t.name: [1, *t.dims] for t in (*spec.inputs, *spec.outputs)}
    assert backend_problems(config, static)[0] == (
        f"IMAGE: max_batch_size {spec.max_batch_size} > 0 needs a dynamic dim 0, the model has [1, 800, 800, 3]")
    wrong_size = {**{t.name: [-1, *t.dims] for t in (*spec.inputs, *spec.outputs)}, "IMAGE": [-1, 640, 640, 3]}
    assert backend_problems(config, wrong_size) == ["IMAGE: model shape [-1, 640, 640, 3] vs config [-1, 800, 800, 3]"]
