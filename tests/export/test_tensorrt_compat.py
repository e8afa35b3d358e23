"""Static TensorRT 10 compatibility of every exported graph, and proof that the check catches what it should."""

import numpy as np
import pytest

from export.models import MODELS
from export.trt_support import check_model, check_onnx_file, support_table

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_exported_graph_parses_in_tensorrt_10(exported, name):
    findings = check_onnx_file(exported[name].onnx_path, name)
    assert not findings, "\n".join(map(str, findings))


def test_support_table_names_its_tensorrt_version_and_source():
    meta = support_table()["_meta"]
    assert meta["tensorrt"] == "10.0" and "onnx-tensorrt" in meta["source"] and "operators.md" in meta["source"]
    ops = support_table()["operators"]
    assert ops["RoiAlign"]["supported"] and not ops["Unique"]["supported"]


def graph(nodes, inputs, outputs, initializers=(), opset=18):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def test_unsupported_op_is_named_with_node_and_model():
    m = graph([helper.make_node("Unique", ["x"], ["y"], name="dedupe")], [vi("x", TensorProto.FLOAT, [4])],
              [vi("y", TensorProto.FLOAT, None)])
    (finding,) = check_model(m, "toy")
    assert str(finding) == "toy: node `dedupe` (Unique): not supported by TensorRT's ONNX parser"


def test_topk_with_a_runtime_k_and_a_k_over_the_limit_are_caught():
    runtime_k = graph([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top")],
                      [vi("x", TensorProto.FLOAT, [5000]), vi("k", TensorProto.INT64, [1])],
                      [vi("v", TensorProto.FLOAT, None), vi("i", TensorProto.INT64, None)])
    assert "computed at run time: K input must be an initializer" in str(check_model(runtime_k, "toy")[0])
    big_k = graph([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top")],
                  [vi("x", TensorProto.FLOAT, [5000])],
                  [vi("v", TensorProto.FLOAT, None), vi("i", TensorProto.INT64, None)],
                  [helper.make_tensor("k", TensorProto.INT64, [1], [4000])])
    assert "4000 exceeds the limit: K must be <= 3840" in str(check_model(big_k, "toy")[0])


def test_resize_modes_and_uint8_inside_the_network_are_caught():
    m = graph([helper.make_node("Cast", ["x"], ["x8"], to=TensorProto.UINT8, name="to_u8"),
               helper.make_node("Cast", ["x8"], ["xf"], to=TensorProto.FLOAT, name="back"),
               helper.make_node("Resize", ["xf", "", "scales"], ["y"], mode="cubic", name="up")],
              [vi("x", TensorProto.FLOAT, [1, 1, 4, 4])], [vi("y", TensorProto.FLOAT, None)],
              [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    problems = [str(f) for f in check_model(m, "toy")]
    assert any("UINT8 tensor `x8` inside the network" in p for p in problems)
    assert any("`up` (Resize): mode='cubic' unsupported" in p for p in problems)


def test_nonzero_on_bool_is_rewritten_and_still_runs_in_onnx_runtime():
    ort = pytest.importorskip("onnxruntime")
    from export.trt_rewrite import make_tensorrt_friendly

    m = graph([helper.make_node("Greater", ["x", "zero"], ["mask"], name="gt"),
               helper.make_node("NonZero", ["mask"], ["idx"], name="nz")],
              [vi("x", TensorProto.FLOAT, [6])], [vi("idx", TensorProto.INT64, [1, None])],
              [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    assert "(NonZero): tensor `mask` is BOOL" in str(check_model(m, "toy")[0])
    fixed, rewrites = make_tensorrt_friendly(m)
    assert len(rewrites) == 1 and not check_model(fixed, "toy")
    x = np.array([1, -1, 2, 0, 3, -4], np.float32)
    run = lambda model: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_array_equal(run(m), run(fixed))


def test_opset_outside_the_supported_range_is_caught():
    m = graph([helper.make_node("Relu", ["x"], ["y"])], [vi("x", TensorProto.FLOAT, [2])],
              [vi("y", TensorProto.FLOAT, None)], opset=22)
    assert "opset 22 outside TensorRT 10.0's supported range 9..20" in str(check_model(m, "toy")[0])
