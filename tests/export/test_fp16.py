"""The FP16 accuracy gate on CPU: every model's mixed-precision ONNX (``--precision fp16``, the graph TensorRT builds
strongly typed and the onnxruntime GPU targets serve) run by ONNX Runtime vs FP32 eager PyTorch.

Gate (issue #7): semantic pixel agreement >= 99.5%; Mask R-CNN >= 95% of detections matched (same label, IoU > 0.9),
matched boxes within 1 px.

Why the test checkpoints are conditioned (``trained_like``): a random network with BatchNorm recalibrated (the
non-degenerate fixture of tests/support.py) is *chaotic*: every residual block amplifies a perturbation by ~1.2x.
Measured on DeepLabV3-ResNet50 at 128 px, the relative FP16 error grows from 0.03% after the stem to 5.5% after
layer4 and 10.8% at the logits (91% pixel agreement for a pure FP16 network), which says nothing about FP16 on a
trained network. Trained residual networks keep their residual branches small (the reason for zero-init-residual
training); scaling each residual branch's last BatchNorm by 0.1 before recalibrating gives the fixture that property
and brings the logit error to ~0.5%, while the class maps stay as fragmented as before (16-21 classes per image).
"""

from __future__ import annotations

import pytest

from export.models import MODELS

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

RESIDUAL_DAMPING = 0.1


def trained_like(net, spec, images) -> None:
    """Damp every residual branch (its last BatchNorm's scale x RESIDUAL_DAMPING), then recalibrate BatchNorm."""
    from torchvision.models.mobilenetv3 import InvertedResidual
    from torchvision.models.resnet import BasicBlock, Bottleneck

    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, Bottleneck):
                module.bn3.weight *= RESIDUAL_DAMPING
            elif isinstance(module, BasicBlock):
                module.bn2.weight *= RESIDUAL_DAMPING
            elif isinstance(module, InvertedResidual) and module.use_res_connect:
                module.block[-1][1].weight *= RESIDUAL_DAMPING
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    target = net.backbone if spec.task == "instance" else net
    target.train()
    with torch.no_grad():
        target(images)
    net.eval()


def realistic_images(spec, count, seed=0):
    try:
        from support import sample_images  # the real photo + synthetic scenes (tests/support.py)

        return sample_images(spec.height, spec.width, count, seed=seed)
    except ImportError:
        from export.onnx_export import example_input

        return example_input(spec, count, seed=seed).numpy()


@pytest.fixture(scope="session")
def fp16_exports(tmp_path_factory):
    """Each model: the conditioned FP32 eager module and its FP16 ONNX export (the production export path)."""
    from export.models import build_served_module
    from export.normalise import image_normaliser
    from export.onnx_export import export_onnx
    from support import make_checkpoint, small_spec

    torch.set_num_threads(2)
    work = tmp_path_factory.mktemp("fp16")
    out = {}
    for name in MODELS:
        spec = small_spec(name)
        module = build_served_module(spec, str(make_checkpoint(spec, work / f"{name}.pt")))
        net = module.net if spec.task == "semantic" else module
        images = image_normaliser(spec)(torch.from_numpy(realistic_images(spec, 4, seed=7)))
        trained_like(net if spec.task == "semantic" else module, spec, images)
        out[name] = (spec, module, export_onnx(module, spec, work / f"{name}.onnx", precision="fp16"))
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fp16_graph_passes_the_accuracy_gate_against_fp32_pytorch(fp16_exports, name):
    from export.precision import check_fp16

    spec, module, path = fp16_exports[name]
    images = realistic_images(spec, 1 if spec.task == "instance" else 4)
    agreement = check_fp16(module, spec, path, images)  # raises with the numbers when the gate fails
    print(f"{name}: {agreement.summary}")
    if spec.task == "instance":
        assert agreement.reference_count >= 10, "gate some detections, not none"


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
    from export.tensorrt.static_check import check_onnx_file

    findings = check_onnx_file(fp16_exports[name][2], name)
    assert not findings, "\n".join(map(str, findings))
