"""The static TensorRT checker's exact findings: table selection by version, the wording of each finding (it is what
a user reads), every ONNX element type named in a type finding, and the UINT8 network-boundary rules."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.errors import ExportError  # noqa: E402
from export.tensorrt import static_check as sc  # noqa: E402
from support import onnx_model as model, tensor_info as io  # noqa: E402

VERSION = "10.1"


def out(name):
    """A float graph output of unknown shape."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)


def found(m, version=VERSION):
    return [(f.node, f.op, f.problem) for f in sc.check_model(m, "m", version)]


@pytest.fixture(autouse=True)
def fresh_table_cache():
    sc.support_table.cache_clear()
    yield
    sc.support_table.cache_clear()


# --- which table ----------------------------------------------------------------------------------------------------

def test_a_patch_release_and_a_newer_release_use_the_newest_table_not_newer_than_them():
    assert sc.support_table("10.1.0")["_meta"]["tensorrt"] == "10.1"
    assert sc.support_table("10.1")["_meta"]["tensorrt"] == "10.1"
    assert sc.support_table("10.7.0")["_meta"]["tensorrt"] == "10.1"
    assert sc.support_table("10.16.0")["_meta"]["tensorrt"] == "10.16"
    assert sc.support_table("10.15")["_meta"]["tensorrt"] == "10.1"  # no 10.15 table: 10.1, never a newer one
    assert sc.support_table("11.0")["_meta"]["tensorrt"] == "10.16"
    assert sc.support_table("11.4.0")["_meta"]["tensorrt"] == "11.1"
    assert sc.support_table(None)["_meta"]["tensorrt"] == max(sc.available_tables(), key=sc._version_key)


def test_a_release_older_than_every_table_is_refused_with_the_tables_listed():
    with pytest.raises(ExportError, match=r"^No TensorRT operator table for TensorRT 10\.0\.1: tables exist for "
                                          r"10\.1, 10\.16, 11\.1\. Generate one with scripts/trt_ops_table\.py\.$"):
        sc.support_table("10.0.1")
    with pytest.raises(ExportError, match=r"for TensorRT 9\.6:"):
        sc.support_table("9.6")


def test_each_release_gets_the_table_of_its_tensorrt_and_an_unverified_one_the_newest():
    """export/data/releases.json: 24.10 = TensorRT 10.5, 24.12 = 10.7, 25.01 = 10.8 (10.1 table); 26.07 = null."""
    assert sc.release_target("24.10") == ("10.5.0", "operator table 10.1 for TensorRT 10.5.0 of NGC 24.10")
    assert sc.release_target("25.01")[1] == "operator table 10.1 for TensorRT 10.8.0 of NGC 25.01"
    assert sc.release_target("26.07") == (None, "operator table 11.1, the newest: the TensorRT of NGC 26.07 "
                                                "(nvcr.io/nvidia/tritonserver:26.07-py3) is not verified")
    assert sc.release_target() == sc.release_target("26.07")  # the default release


def test_versions_compare_numerically_by_major_and_minor():
    assert sc._version_key("10.10.0") > sc._version_key("10.9")
    assert sc._version_key("10.1.5") == (10, 1)


def test_no_tables_at_all_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "DATA_DIR", tmp_path)
    assert sc.available_tables() == {}
    with pytest.raises(ExportError, match=r"^No TensorRT operator tables in .*\.$"):
        sc.support_table("10.1")


def test_tables_are_found_by_version(tmp_path, monkeypatch):
    (tmp_path / "onnx_ops_trt10.3.json").write_text("{}")
    (tmp_path / "other.json").write_text("{}")
    monkeypatch.setattr(sc, "DATA_DIR", tmp_path)
    assert sc.available_tables() == {"10.3": tmp_path / "onnx_ops_trt10.3.json"}


# --- wording of each finding ----------------------------------------------------------------------------------------

def test_opset_finding_names_the_opset_and_the_range():
    table = sc.support_table(VERSION)
    low, high = table["_meta"]["opset_range"]
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT)], opset=high + 1)
    assert str(sc.check_model(m, "mymodel", VERSION)[0]) == (
        f"mymodel: node `<model>` (opset): opset {high + 1} outside TensorRT {VERSION}'s supported range {low}..{high}")


def test_a_node_without_name_is_named_by_its_output_or_a_question_mark():
    m = model([helper.make_node("Unique", ["x"], ["y"])], [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT)])
    assert [f[0] for f in found(m)] == ["y"]
    node = helper.make_node("NotARealOp", ["x"], [])
    m = model([node, helper.make_node("Relu", ["x"], ["y"])], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT)])
    assert found(m) == [("?", "NotARealOp", "not in the TensorRT support list")]


def test_a_type_finding_names_the_tensor_its_type_and_the_listed_types():
    row = sc.support_table(VERSION)["operators"]["Relu"]
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [io("x", TensorProto.INT8)],
              [io("y", TensorProto.INT8)])
    assert found(m) == [("r", "Relu", f"tensor `x` is INT8; supported: {', '.join(row['types'])}")]


@pytest.mark.parametrize(("elem", "name"), [(1, "FP32"), (3, "INT8"), (6, "INT32"), (7, "INT64"), (9, "BOOL"),
                                            (10, "FP16"), (11, "DOUBLE"), (16, "BF16"), (4, "UINT16"),
                                            (5, "INT16"), (12, "UINT32"), (13, "UINT64"), (17, "UNKNOWN")])
def test_every_onnx_element_type_is_named_in_findings(elem, name):
    """An op listing no types refuses every one of them, by name (17, FLOAT8E4M3FN, is not in the matrix)."""
    table = sc.support_table(VERSION)
    table["operators"]["Identity"] = {"supported": True, "types": []}
    try:
        m = model([helper.make_node("Identity", ["x"], ["y"], name="i")], [io("x", elem)], [io("y", elem)], opset=19)
        problems = [p for _, _, p in found(m)]
    finally:
        sc.support_table.cache_clear()
    assert problems == [f"tensor `x` is {name}; supported: "]


def test_string_tensors_are_named_string():
    assert sc.ELEM_TYPES[8] == "STRING" and sc.ELEM_TYPES[2] == "UINT8"


def test_double_is_allowed_only_where_fp32_is():
    assert sc._allowed_types(["FP32", "INT32"]) == {"FP32", "INT32", "DOUBLE"}
    assert sc._allowed_types(["FP16"]) == {"FP16"}


def test_restriction_findings_are_worded_exactly():
    # TopK: K from a run-time tensor, then K over the limit.
    k_runtime = model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="t")],
                      [io("x", TensorProto.FLOAT, (1, 5000)), io("k", TensorProto.INT64, (1,))],
                      [io("v", TensorProto.FLOAT, (1, 5)), io("i", TensorProto.INT64, (1, 5))])
    assert found(k_runtime) == [("t", "TopK", "input 1 (`k`) is computed at run time: `K` input must be less than "
                                              "3840.")]
    big = numpy_helper.from_array(np.array([1, 4000], np.int64)[1:], "k")
    k_big = model([helper.make_node("TopK", ["x", "k"], ["v", "i"], name="t")],
                  [io("x", TensorProto.FLOAT, (1, 5000))],
                  [io("v", TensorProto.FLOAT, (1, 4000)), io("i", TensorProto.INT64, (1, 4000))], [big])
    assert found(k_big) == [("t", "TopK", "4000 exceeds the limit: `K` input must be less than 3840.")]
    # Resize with an unsupported mode: the attribute, its value (decoded from bytes) and the table's text.
    resize = model([helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", mode="cubic")],
                   [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT, (1, 3, 16, 16))],
                   [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")])
    assert found(resize) == [("rs", "Resize", "mode='cubic' unsupported: Supported resize modes: `nearest`, "
                                              "`linear`.")]
    # MaxPool with Indices.
    pool = model([helper.make_node("MaxPool", ["x"], ["y", "idx"], name="mp", kernel_shape=[2, 2])],
                 [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT, (1, 3, 7, 7)),
                                                io("idx", TensorProto.INT64, (1, 3, 7, 7))])
    assert found(pool) == [("mp", "MaxPool", "`Indices` output tensor unsupported.")]


def test_an_attribute_left_at_its_default_is_checked_against_the_default():
    resize = model([helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs")],
                   [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT, (1, 3, 16, 16))],
                   [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")])
    assert found(resize) == []


def test_a_missing_required_initializer_is_worded_exactly():
    m = model([helper.make_node("CumSum", ["x", ""], ["y"], name="c")], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT)])
    assert ("c", "CumSum", "input 1 missing: `axis` must be an initializer") in found(m)
    m = model([helper.make_node("CumSum", ["x"], ["y"], name="c")], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT)])
    assert ("c", "CumSum", "input 1 missing: `axis` must be an initializer") in found(m)


def test_an_optional_initializer_input_left_out_is_fine():
    m = model([helper.make_node("ReduceMax", ["x"], ["y"], name="rm", keepdims=1)], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT, (1, 1, 1, 1))], opset=18)
    assert found(m) == []


# --- UINT8 at the network boundary ----------------------------------------------------------------------------------

def test_a_uint8_input_read_by_anything_but_a_float_cast_is_refused():
    relu = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [io("x", TensorProto.UINT8)],
                 [io("y", TensorProto.FLOAT)])
    assert ("r", "Relu", "UINT8 network input `x` read by Relu: TensorRT takes a UINT8 input only into a Cast to "
                         "FP32/FP16") in found(relu)
    to_int = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.INT32)],
                   [io("x", TensorProto.UINT8)], [io("y", TensorProto.INT32)])
    assert found(to_int) == [
        ("c", "Cast", "Cast UINT8 -> INT32: TensorRT casts UINT8 only from/to FP32 or FP16"),
        ("c", "Cast", "UINT8 network input `x` read by Cast: TensorRT takes a UINT8 input only into a Cast to "
                      "FP32/FP16")]
    to_half = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.FLOAT16)],
                    [io("x", TensorProto.UINT8)], [io("y", TensorProto.FLOAT16)])
    assert found(to_half) == []


def test_a_uint8_output_is_written_only_by_a_cast_from_a_float():
    from_float = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.UINT8)],
                       [io("x", TensorProto.FLOAT)], [io("y", TensorProto.UINT8)])
    assert found(from_float) == []
    from_int = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.UINT8)],
                     [io("x", TensorProto.INT32)], [io("y", TensorProto.UINT8)])
    assert found(from_int) == [("c", "Cast", "Cast INT32 -> UINT8: TensorRT casts UINT8 only from/to FP32 or FP16")]
    by_identity = model([helper.make_node("Cast", ["x"], ["f"], name="c", to=TensorProto.FLOAT),
                         helper.make_node("Cast", ["f"], ["u"], name="c2", to=TensorProto.UINT8),
                         helper.make_node("Identity", ["u"], ["y"], name="i")],
                        [io("x", TensorProto.FLOAT)], [io("y", TensorProto.UINT8)])
    problems = found(by_identity)
    assert ("i", "Identity", "UINT8 network output `y` written by Identity: TensorRT writes a UINT8 output only "
                             "from a Cast of FP32/FP16") in problems
    assert ("c2", "Cast", "UINT8 tensor `u` inside the network: TensorRT takes UINT8 only at network inputs and "
                          "outputs") in problems


def test_a_cast_between_non_uint8_types_is_checked_by_type_only():
    m = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.INT32)], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.INT32)])
    assert found(m) == []


def test_a_constant_of_shape_output_is_not_a_build_time_constant():
    """Only Constant nodes (and initializers) count as constants; ConstantOfShape, which also has a `value`
    attribute, computes its tensor at run time."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["k"], name="cos",
                              value=numpy_helper.from_array(np.array([5], np.int64))),
             helper.make_node("TopK", ["x", "k"], ["v", "i"], name="t")]
    m = model(nodes, [io("x", TensorProto.FLOAT, (1, 5000)), io("shape", TensorProto.INT64, (1,))],
              [io("v", TensorProto.FLOAT, (1, 5)), io("i", TensorProto.INT64, (1, 5))])
    assert ("t", "TopK", "input 1 (`k`) is computed at run time: `K` input must be less than 3840.") in found(m)


def test_the_ai_onnx_domain_is_range_checked_like_the_default_domain():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT)])
    del m.opset_import[:]
    m.opset_import.append(helper.make_opsetid("ai.onnx", 25))
    assert any(f[:2] == ("<model>", "opset") and f[2].startswith("opset 25 outside") for f in found(m))


def test_a_file_is_checked_against_the_requested_version(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.FLOAT)])
    onnx.save(m, str(tmp_path / "m.onnx"))
    assert sc.check_onnx_file(tmp_path / "m.onnx", "m", "10.1") == []
    with pytest.raises(ExportError, match=r"No TensorRT operator table for TensorRT 9\.0"):
        sc.check_onnx_file(tmp_path / "m.onnx", "m", "9.0")


def test_an_initializer_of_an_unlisted_type_is_refused_by_name():
    relu_types = ", ".join(sc.support_table(VERSION)["operators"]["Relu"]["types"])
    w = numpy_helper.from_array(np.zeros((1, 3, 8, 8), np.int8), "w")
    m = model([helper.make_node("Relu", ["w"], ["y"], name="r")], [], [io("y", TensorProto.INT8)], [w])
    assert found(m) == [("r", "Relu", f"tensor `w` is INT8; supported: {relu_types}")]
    f8 = helper.make_tensor("w", TensorProto.FLOAT8E4M3FN, [1], [0.0])
    m = model([helper.make_node("Relu", ["w"], ["y"], name="r")], [], [io("y", TensorProto.FLOAT8E4M3FN, (1,))],
              [f8], opset=19)
    assert ("r", "Relu", f"tensor `w` is UNKNOWN; supported: {relu_types}") in found(m)


def test_a_node_in_the_ai_onnx_domain_is_a_standard_op():
    node = helper.make_node("Relu", ["x"], ["y"], name="r", domain="ai.onnx")
    m = model([node], [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT)])
    m.opset_import.append(helper.make_opsetid("ai.onnx", 17))
    assert found(m) == []


def test_every_node_is_checked_after_a_custom_one():
    nodes = [helper.make_node("MyOp", ["x"], ["h"], name="custom", domain="com.example"),
             helper.make_node("Unique", ["h"], ["y"], name="u")]
    m = model(nodes, [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT)])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    assert found(m) == [("custom", "MyOp", "custom domain `com.example` needs a TensorRT plugin"),
                        ("u", "Unique", "not supported by TensorRT's ONNX parser")]


def test_an_op_without_inputs_is_checked_without_failing():
    m = model([helper.make_node("RandomNormal", [], ["y"], name="rn", shape=[1, 3, 8, 8])], [],
              [io("y", TensorProto.FLOAT)])
    assert found(m) == []


def test_both_casts_around_an_inner_uint8_tensor_are_reported():
    nodes = [helper.make_node("Cast", ["x"], ["u"], name="c1", to=TensorProto.UINT8),
             helper.make_node("Cast", ["u"], ["y"], name="c2", to=TensorProto.FLOAT)]
    m = model(nodes, [io("x", TensorProto.FLOAT)], [io("y", TensorProto.FLOAT)])
    problem = "UINT8 tensor `u` inside the network: TensorRT takes UINT8 only at network inputs and outputs"
    assert found(m) == [("c1", "Cast", problem), ("c2", "Cast", problem)]


def test_a_cast_from_an_unlisted_type_is_refused():
    cast_types = ", ".join(sc.support_table(VERSION)["operators"]["Cast"]["types"])
    m = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.FLOAT)], [io("x", TensorProto.INT8)],
              [io("y", TensorProto.FLOAT)])
    assert found(m) == [("c", "Cast", f"tensor `x` is INT8; supported: {cast_types}")]
    m = model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TensorProto.INT8)], [io("x", TensorProto.FLOAT)],
              [io("y", TensorProto.INT8)])
    assert found(m) == [("c", "Cast", f"tensor `y` is INT8; supported: {cast_types}")]


# --- "resolvable to a constant" (10.14+) vs "must be an initializer" (10.1) ------------------------------------------

def _squeeze(axes_nodes, axes_name, inputs=(), dims=(1, 3, 1, 8)):
    """Squeeze(x, axes) where `axes` comes from ``axes_nodes`` (and graph ``inputs``)."""
    nodes = [*axes_nodes, helper.make_node("Squeeze", ["x", axes_name], ["y"], name="sq")]
    return model(nodes, [io("x", TensorProto.FLOAT, dims), *inputs], [out("y")], opset=17)


def _const(name, values):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(values, np.int64)))


SQUEEZE_11 = "`axes` must be resolvable to a constant."


@pytest.mark.parametrize("version", ["10.16", "11.1"])
def test_squeeze_axes_that_tensorrt_can_fold_pass_from_10_16_on(version):
    """An initializer, a Constant node, arithmetic on constants and values taken from shapes are all folded by
    TensorRT at build time: not refused (the checker must not be stricter than TensorRT)."""
    init = numpy_helper.from_array(np.array([2], np.int64), "axes")
    m = _squeeze([], "axes")
    m.graph.initializer.append(init)
    assert found(m, version) == []
    assert found(_squeeze([_const("axes", [2])], "axes"), version) == []
    folded = [_const("a", [1]), _const("one", [1]), helper.make_node("Add", ["a", "one"], ["axes"])]
    assert found(_squeeze(folded, "axes"), version) == []
    from_shape = [helper.make_node("Shape", ["x"], ["s"]), _const("i", [0]),
                  helper.make_node("Gather", ["s", "i"], ["g"]), _const("one", [1]),
                  helper.make_node("Add", ["g", "one"], ["axes"])]  # x's dim 0 (1) + 1: axis 2
    assert found(_squeeze(from_shape, "axes"), version) == []


@pytest.mark.parametrize("version", ["10.16", "11.1"])
def test_squeeze_axes_computed_from_a_network_inputs_values_are_refused(version):
    nodes = [_const("one", [1]), helper.make_node("Add", ["k", "one"], ["axes"], name="add")]
    m = _squeeze(nodes, "axes", inputs=[io("k", TensorProto.INT64, (1,))])
    assert found(m, version) == [("sq", "Squeeze", f"input 1 (`axes`) is computed from a network input's values: "
                                                   f"{SQUEEZE_11}")]


def test_squeeze_axes_from_a_shape_still_need_an_initializer_in_10_1():
    """10.1-GA: "`axes` must be an initializer" (a Constant node counts: the parser imports it as weights)."""
    from_shape = [helper.make_node("Shape", ["x"], ["s"]), _const("i", [0]),
                  helper.make_node("Gather", ["s", "i"], ["axes"])]
    assert found(_squeeze(from_shape, "axes"), "10.1") == [
        ("sq", "Squeeze", "input 1 (`axes`) is computed at run time: `axes` must be an initializer")]
    assert found(_squeeze([_const("axes", [2])], "axes"), "10.1") == []


@pytest.mark.parametrize(("version", "text"), [("10.1", "`axes` must be an initializer"), ("10.16", None),
                                               ("11.1", None)])
def test_pad_and_slice_axes_are_restricted_in_10_1_only(version, text):
    """operators.md: Pad/Slice "`axes` must be an initializer" in 10.1-GA, no restriction in 10.16 and 11.1."""
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"], name="sl")]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "st"),
             numpy_helper.from_array(np.array([1], np.int64), "en")]
    m = model(nodes, [io("x", TensorProto.FLOAT), io("ax", TensorProto.INT64, (1,))],
              [out("y")], inits)
    expected = [] if text is None else [("sl", "Slice", f"input 3 (`ax`) is computed at run time: {text}")]
    assert found(m, version) == expected


@pytest.mark.parametrize("version", ["10.1", "10.16", "11.1"])
def test_pooling_beyond_3d_and_dilated_pooling_are_refused(version):
    """operators.md: MaxPool "2D or 3D pooling only. ... `dilations` must be empty or all ones"."""
    m = model([helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2])],
              [io("x", TensorProto.FLOAT, (1, 3, 8))], [out("y")])
    assert found(m, version) == [("p", "MaxPool", "input 0 has rank 3 (1 spatial dimensions): 2D or 3D pooling only.")]
    m = model([helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], dilations=[2, 2])],
              [io("x", TensorProto.FLOAT)], [out("y")])
    assert found(m, version) == [
        ("p", "MaxPool", "dilations=[2, 2] unsupported: `dilations` must be empty or all ones")]
