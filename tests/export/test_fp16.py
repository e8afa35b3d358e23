"""The FP16 accuracy gate on CPU: every model's mixed-precision ONNX (``--precision fp16``, the graph TensorRT builds
strongly typed and the onnxruntime GPU targets serve) run by ONNX Runtime vs FP32 eager PyTorch.

Gate (issue #7): semantic pixel agreement >= 99.5%; Mask R-CNN >= 95% of detections matched (same label, IoU > 0.9),
matched boxes within 1 px.
The semantic checkpoints are trained here on a toy task and Mask R-CNN's conditioned to behave like a trained
network's (tests/fp16_fixtures.py says why and how). The gate runs each FP16 graph twice on CPU, as it is and with
every FP16 tensor rounded as a GPU stores it (export/fp16_rounding.py); the worse run decides.
"""

from __future__ import annotations

import pytest

from export.models import MODELS

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from fp16_fixtures import TRAIN_STEPS, scene_batch  # noqa: E402
from support import sample_images  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fp16_graph_passes_the_accuracy_gate_against_fp32_pytorch(fp16_exports, name):
    from export.precision import check_fp16

    spec, module, path = fp16_exports[name]
    images = sample_images(spec.height, spec.width, 1 if spec.task == "instance" else 4)
    agreement = check_fp16(module, spec, path, images)  # raises with the numbers when the gate fails
    print(f"{name}: {agreement.summary}")
    if spec.task == "instance":
        assert agreement.reference_count >= 10, "gate some detections, not none"


@pytest.mark.parametrize("name", sorted(TRAIN_STEPS))
def test_a_trained_fixture_segments_scenes_it_never_saw(fp16_exports, name):
    """The gate means something only if the trained fixture really learned its task (fp16_fixtures says why)."""
    spec, module, _ = fp16_exports[name]
    images, labels = scene_batch(spec.height, 8, seed=9000)
    with torch.inference_mode():
        mask = module(images)
    accuracy = float((mask.long() == labels).float().mean())
    background = float((labels == 0).float().mean())
    print(f"{name}: {accuracy:.1%} pixel accuracy on held-out scenes (background {background:.1%})")
    assert accuracy >= background + 0.10, f"{accuracy:.1%} pixel accuracy, background alone is {background:.1%}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fp16_graph_types_are_fixed_with_fp32_where_numerics_need_it(fp16_exports, name):
    import onnx

    from export.metadata import precision_from_onnx
    from export.precision import tensor_types

    spec, _, path = fp16_exports[name]
    model = onnx.load(str(path))
    types = tensor_types(model)
    nodes = list(model.graph.node)
    assert precision_from_onnx(path) == "fp16"
    untyped = [o for n in nodes for o in n.output if types.get(o, "UNDEFINED") == "UNDEFINED"]
    assert not untyped, f"tensors without a fixed type: {untyped[:5]}"
    convs = [types[n.output[0]] for n in nodes if n.op_type == "Conv"]
    assert convs.count("FLOAT16") >= 0.8 * len(convs), "the convolutions run in FP16"
    must_be_fp32 = {"ArgMax": [0], "Softmax": [0], "TopK": [0], "NonMaxSuppression": [0, 1], "RoiAlign": [1],
                    "Exp": [0], "ReduceMean": [0], "ReduceSum": [0]}
    for node in nodes:
        for i in must_be_fp32.get(node.op_type, []):
            assert types[node.input[i]] == "FLOAT", f"{node.op_type} {node.name} input {i} is {types[node.input[i]]}"
    # The uint8 -> float normalisation is FP32: the cast of IMAGE is to FLOAT.
    image_casts = [n for n in nodes if n.op_type == "Cast" and n.input[0] == "IMAGE"]
    assert image_casts and all(types[n.output[0]] == "FLOAT" for n in image_casts)
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert {k: onnx.helper.tensor_dtype_to_np_dtype(v) for k, v in outputs.items()} == {
        t.name: t.np_dtype for t in spec.outputs}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fp16_graph_passes_the_static_tensorrt_check(fp16_exports, name):
    from export.metadata import load_onnx
    from export.tensorrt.static_check import available_tables, check_model

    model = load_onnx(fp16_exports[name][2])
    # Every table: the newest is the default check (NGC 26.07's TensorRT unverified; test_tensorrt_compat.py::
    # test_the_default_check_uses_the_newest_table), 10.1 that of the 24.10-25.01 releases.
    for version in available_tables():
        findings = check_model(model, name, version)
        assert not findings, "\n".join(map(str, findings))
