"""The FP16 graph pass on small graphs (no torch): which tensors become FP16, where Casts go, what stays FP32."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.precision import convert_to_fp16, tensor_types  # noqa: E402


def conv_net():
    """IMAGE(uint8) -> Cast -> Mul (normalise) -> Conv -> Relu -> ReduceMean(SE) -> Mul -> Conv (logits) -> ArgMax."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 8, 1, 1)).astype(np.float32), "w2")
    scale = numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["IMAGE"], ["f"], to=TensorProto.FLOAT, name="to_float"),
        helper.make_node("Mul", ["f", "scale"], ["x"], name="normalise"),
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("ReduceMean", ["r1", "axes"], ["m"], keepdims=1, name="se_pool"),
        helper.make_node("Mul", ["r1", "m"], ["se"], name="se_scale"),
        helper.make_node("Conv", ["se", "w2"], ["logits"], name="classifier"),
        helper.make_node("ArgMax", ["logits"], ["MASK"], axis=1, keepdims=0, name="argmax"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("IMAGE", TensorProto.UINT8, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("MASK", TensorProto.INT64, [1, 8, 8])],
                              initializer=[w1, w2, scale, axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def producer_type(model, types, node_name):
    node = next(n for n in model.graph.node if n.name == node_name)
    return types[node.output[0]]


def test_convolutions_run_fp16_with_fp32_normalisation_reductions_and_logits():
    model, counts = convert_to_fp16(conv_net())
    types = tensor_types(model)
    assert [producer_type(model, types, n) for n in ("normalise", "conv1", "relu1", "se_pool", "se_scale",
                                                       "classifier")] == [
        "FLOAT", "FLOAT16", "FLOAT16", "FLOAT", "FLOAT", "FLOAT"]  # se_scale reads the FP32 pool: FP32
    assert counts == {"fp16 nodes": 2, "casts": 2, "fp16 constants": 1}
    onnx.checker.check_model(model, full_check=True)


def test_spec_fp32_ops_never_run_in_fp16():
    model, _ = convert_to_fp16(conv_net(), fp32_ops=("Relu",))
    types = tensor_types(model)
    assert producer_type(model, types, "relu1") == "FLOAT" and producer_type(model, types, "conv1") == "FLOAT16"


def test_the_fp16_graph_computes_what_the_fp32_graph_does():
    ort = pytest.importorskip("onnxruntime")
    image = np.random.default_rng(1).integers(0, 256, (1, 3, 8, 8), dtype=np.uint8)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa
        None, {"IMAGE": image})[0]
    fp32, fp16 = run(conv_net()), run(convert_to_fp16(conv_net())[0])
    assert np.mean(fp32 == fp16) >= 0.95


def gate_runs(monkeypatch, as_is_wrong: bool, rounded_wrong: bool):
    """The export-time gate with its three runs replaced: FP32 reference all zeros, each FP16 run right or wrong."""
    import export.fp16_rounding
    import export.parity
    from export.spec import get_spec

    spec = get_spec("unet").with_options(size=64)
    mask = np.zeros((1, 64, 64), np.uint8)
    answer = lambda wrong: {"MASK": mask + 1 if wrong else mask.copy()}  # noqa: E731
    monkeypatch.setattr(export.parity, "run_eager", lambda module, spec, images: {"MASK": mask})
    monkeypatch.setattr(export.parity, "run_onnxruntime", lambda path, spec, images: answer(as_is_wrong))
    monkeypatch.setattr(export.fp16_rounding, "run_rounded", lambda path, spec, images: answer(rounded_wrong))
    return spec


@pytest.mark.parametrize("enforce", [True, False])
def test_the_export_time_fp16_gate_raises_unless_the_weights_are_random(monkeypatch, caplog, enforce):
    from export.errors import ExportError
    from export.precision import check_fp16

    spec = gate_runs(monkeypatch, as_is_wrong=True, rounded_wrong=True)
    if enforce:
        with pytest.raises(ExportError, match=r"FP16 accuracy gate failed for `unet` .*pixel agreement 0\.0"):
            check_fp16(None, spec, None, None)
    else:
        assert not check_fp16(None, spec, None, None, enforce=False).passed
        assert "not enforced: random weights" in caplog.text


@pytest.mark.parametrize("as_is_wrong", [True, False])
def test_either_fp16_run_failing_fails_the_gate(monkeypatch, as_is_wrong):
    """ONNX Runtime on CPU computes the FP16 region in FP32: the run with every FP16 tensor rounded is the one that
    sees what a GPU stores, and it alone failing must fail the gate (and the other way round)."""
    from export.errors import ExportError
    from export.precision import check_fp16

    spec = gate_runs(monkeypatch, as_is_wrong=as_is_wrong, rounded_wrong=not as_is_wrong)
    failing = "as is" if as_is_wrong else "every FP16 tensor rounded"
    with pytest.raises(ExportError, match=rf"{failing}: pixel agreement 0\.0"):
        check_fp16(None, spec, None, None)


def test_the_gate_passes_with_both_runs_reported(monkeypatch):
    from export.precision import check_fp16

    agreement = check_fp16(None, gate_runs(monkeypatch, as_is_wrong=False, rounded_wrong=False), None, None)
    assert agreement.passed and agreement.pixel_agreement == 1.0
    assert agreement.summary.startswith("as is: pixel agreement 100") and "; every FP16 tensor rounded: pixel" in \
        agreement.summary
