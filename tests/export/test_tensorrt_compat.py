"""Static TensorRT compatibility of every exported graph against onnx-tensorrt's operator table, and proof that the
check catches what it should (UINT8 boundary rules on both sides of every cast, restrictions, versions)."""

import numpy as np
import pytest

from export.errors import ExportError
from export.models import MODELS
from export.metadata import load_onnx
from export.tensorrt.static_check import available_tables, check_model, support_table

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from support import onnx_model, tensor_info as vi  # noqa: E402


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_exported_graph_passes_the_static_tensorrt_check(exported, name):
    """The default check (newest table: NGC 26.07's TensorRT is unverified) and every older table, which the
    releases in export/data/releases.json with TensorRT 10.5-10.8 are checked against."""
    model = load_onnx(exported[name].onnx_path)
    for version in available_tables():  # the newest is the default check (test_the_default_check_uses_the_newest_table)
        findings = check_model(model, name, version)
        assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize(("version", "opsets"), [("10.1", [9, 20]), ("10.16", [9, 24]), ("11.1", [9, 24])])
def test_support_table_names_its_tensorrt_version_and_source(version, opsets):
    meta = support_table(version)["_meta"]
    assert "onnx/onnx-tensorrt" in meta["source"] and "operators.md" in meta["source"] and len(meta["commit"]) == 40
    assert meta["opset_range"] == opsets and meta["generated_by"] == "scripts/trt_ops_table.py"
    assert meta["tensorrt"] == version
    ops = support_table(version)["operators"]
    assert ops["RoiAlign"]["supported"] and not ops["Unique"]["supported"]
    assert [r["rule"] for r in ops["TopK"]["restrictions"]] == ["attribute_in", "max_constant_input"]


def test_the_default_check_uses_the_newest_table():
    assert support_table()["_meta"]["tensorrt"] == "11.1"


def test_the_checker_takes_the_target_tensorrt_version():
    newest = max(available_tables(), key=lambda v: tuple(map(int, v.split("."))))
    assert support_table("10.5.0")["_meta"]["tensorrt"] == "10.1"  # no 10.5 table: the newest not newer than it
    assert support_table("12.0")["_meta"]["tensorrt"] == newest
    with pytest.raises(ExportError, match=r"No TensorRT operator table for TensorRT 8\.6"):
        support_table("8.6")


def graph(nodes, inputs, outputs, initializers=(), opset=18):
    return onnx_model(nodes, inputs, outputs, initializers, opset=opset)


def test_unsupported_op_is_named_with_node_and_model():
    m = graph([helper.make_node("Unique", ["x"], ["y"], name="dedupe")], [vi("x", TensorProto.FLOAT, [4])],
              [vi("y", TensorProto.FLOAT, None)])
    (finding,) = check_model(m, "toy")
    assert str(finding) == "toy: node `dedupe` (Unique): not supported by TensorRT's ONNX parser"


def test_topk_over_the_limit_and_unsorted_are_caught():
    """operators.md (10.1-GA): TopK "`sorted` must be 1. `K` input must be less than 3840"."""
    big_k = graph([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="top", sorted=0)],
                  [vi("x", TensorProto.FLOAT, [5000])],
                  [vi("v", TensorProto.FLOAT, None), vi("i", TensorProto.INT64, None)],
                  [helper.make_tensor("k", TensorProto.INT64, [1], [3840])])
    problems = [str(f) for f in check_model(big_k, "toy")]
    assert any("3840 exceeds the limit: `K` input must be less than 3840" in p for p in problems)
    assert any("sorted=0 unsupported: `sorted` must be 1" in p for p in problems)


def test_reduce_axes_computed_at_run_time_are_caught():
    m = graph([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ReduceMean", ["x", "s"], ["y"], name="r")],
              [vi("x", TensorProto.FLOAT, [2, 3])], [vi("y", TensorProto.FLOAT, None)])
    assert any("input 1 (`s`) is computed at run time: `axes` must be an initializer" in str(f)
               for f in check_model(m, "toy"))


def test_uint8_input_read_by_shape_and_uint8_cast_from_int64_are_caught_and_rewritten():
    """The old graphs: Shape(IMAGE) read the uint8 input directly, and MASK was Cast(INT64 -> UINT8)."""
    ort = pytest.importorskip("onnxruntime")
    from export.tensorrt.rewrite import make_tensorrt_friendly

    m = graph([helper.make_node("Shape", ["IMAGE"], ["shape"], name="shape_of_image"),
               helper.make_node("Cast", ["IMAGE"], ["f"], to=TensorProto.FLOAT, name="to_float"),
               helper.make_node("ArgMax", ["f"], ["ids"], axis=2, keepdims=0, name="argmax"),
               helper.make_node("Cast", ["ids"], ["MASK"], to=TensorProto.UINT8, name="to_u8")],
              [vi("IMAGE", TensorProto.UINT8, [1, 4, 3])],
              [vi("MASK", TensorProto.UINT8, [1, 4]), vi("shape", TensorProto.INT64, [3])])
    problems = [str(f) for f in check_model(m, "toy")]
    assert any("UINT8 network input `IMAGE` read by Shape" in p for p in problems)
    assert any("`to_u8` (Cast): Cast INT64 -> UINT8: TensorRT casts UINT8 only from/to FP32 or FP16" in p
               for p in problems)
    fixed, rewrites = make_tensorrt_friendly(m)
    assert len(rewrites) == 2 and not check_model(fixed, "toy"), [str(f) for f in check_model(fixed, "toy")]
    image = np.array([[[1, 9, 3], [7, 2, 2], [0, 0, 5], [4, 4, 4]]], np.uint8)
    run = lambda model: ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"IMAGE": image})
    for a, b in zip(run(m), run(fixed)):
        np.testing.assert_array_equal(a, b)


def test_a_cast_from_uint8_to_an_integer_is_caught():
    m = graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT32, name="u8_to_i32")],
              [vi("x", TensorProto.UINT8, [2])], [vi("y", TensorProto.INT32, None)])
    problems = [str(f) for f in check_model(m, "toy")]
    assert any("Cast UINT8 -> INT32" in p for p in problems)
    assert any("UINT8 network input `x` read by Cast" in p for p in problems)


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
    from export.tensorrt.rewrite import make_tensorrt_friendly

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
    assert "opset 22 outside TensorRT 10.1's supported range 9..20" in str(check_model(m, "toy", "10.1")[0])
    assert check_model(m, "toy", "11.1") == []
    m.opset_import[0].version = 25
    assert "opset 25 outside TensorRT 11.1's supported range 9..24" in str(check_model(m, "toy")[0])
