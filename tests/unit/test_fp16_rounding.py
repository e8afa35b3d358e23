"""export/fp16_rounding.py on small graphs: every FP16 tensor rounded where it is made, as a GPU stores it."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.errors import ExportError  # noqa: E402
from export.fp16_rounding import rounded_graph  # noqa: E402
from support import onnx_model, tensor_info  # noqa: E402

# Values for which rounding the product before the sum changes the answer (pi's element does; the test asserts that
# some element does): SCALE is FP16 1.0009766, SHIFT -2^-10.
X = np.array([[1.0004883, 3.1415927, 0.33333334, 1000.1]], np.float32)
SCALE = np.float16(1.0004883)
SHIFT = np.float16(-0.0009765625)


def chain(with_constant_node=False):
    """X (FP32) -> Cast(FP16) -> Mul(scale) -> Add(shift) -> Y (FP16 graph output) and Cast(FLOAT) -> Z."""
    shift = numpy_helper.from_array(np.array([SHIFT], np.float16), "shift")
    nodes = [
        helper.make_node("Cast", ["X"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Mul", ["h", "scale"], ["p"]),
        helper.make_node("Add", ["p", "shift"], ["Y"]),
        helper.make_node("Cast", ["Y"], ["Z"], to=TensorProto.FLOAT),
    ]
    initializers = [shift]
    if with_constant_node:
        nodes.insert(0, helper.make_node("Constant", [], ["scale"],
                                         value=numpy_helper.from_array(np.array([SCALE], np.float16))))
    else:
        initializers.append(numpy_helper.from_array(np.array([SCALE], np.float16), "scale"))
    return onnx_model(nodes, [tensor_info("X", TensorProto.FLOAT, [1, 4])],
                      [tensor_info("Y", TensorProto.FLOAT16, [1, 4]), tensor_info("Z", TensorProto.FLOAT, [1, 4])],
                      initializers, opset=18)


def run(model):
    from export.parity import ort_session

    return ort_session(model.SerializeToString(), optimise=False).run(None, {"X": X})


def per_op_fp16():
    """What FP16 storage gives: each op computed in FP32, its result rounded to FP16."""
    h = X.astype(np.float16).astype(np.float32)
    p = (h * np.float32(SCALE)).astype(np.float16).astype(np.float32)
    return (p + np.float32(SHIFT)).astype(np.float16).astype(np.float32)


@pytest.mark.parametrize("with_constant_node", [False, True])
def test_every_fp16_tensor_is_rounded_where_it_is_made(with_constant_node):
    h = X.astype(np.float16).astype(np.float32)
    unrounded_product = (h * np.float32(SCALE) + np.float32(SHIFT)).astype(np.float16).astype(np.float32)
    assert not np.array_equal(per_op_fp16(), unrounded_product), "the case must tell the two apart"
    model = rounded_graph(chain(with_constant_node))
    onnx.checker.check_model(model, full_check=True)
    y, z = run(model)
    np.testing.assert_array_equal(z, per_op_fp16())
    np.testing.assert_array_equal(y, per_op_fp16())  # an FP16 graph output: rounded, returned in FP32


def test_the_rounded_graph_is_all_fp32_with_one_cast_pair_per_fp16_tensor():
    from export.precision import tensor_types

    model = rounded_graph(chain())
    types = tensor_types(model)
    assert "FLOAT16" not in {kind for name, kind in types.items() if not name.endswith("/fp16_rounded")}
    pairs = [n.input[0] for n in model.graph.node if n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT16]
    assert sorted(pairs) == sorted(f"{t}/fp16_rounded/in" for t in ("h", "p", "Y"))


def test_the_original_graph_is_left_as_it_was():
    model = chain()
    before = model.SerializeToString()
    rounded_graph(model)
    assert model.SerializeToString() == before


def branch(value_type):
    return helper.make_graph([helper.make_node("Identity", ["X"], ["b"])], "branch", [],
                             [helper.make_tensor_value_info("b", value_type, [1, 4])])


def test_fp16_inside_a_subgraph_is_refused_by_name_an_fp32_subgraph_is_kept():
    model = chain()
    model.graph.node.append(helper.make_node("If", ["cond"], ["out"], then_branch=branch(TensorProto.FLOAT16),
                                             else_branch=branch(TensorProto.FLOAT), name="maybe"))
    with pytest.raises(ExportError, match=r"inside subgraphs \(If `maybe` has FP16 tensors\); export with "
                                          r"--precision fp32"):
        rounded_graph(model)
    kept = chain()
    kept.graph.node.append(helper.make_node("If", ["cond"], ["out"], then_branch=branch(TensorProto.FLOAT),
                                            else_branch=branch(TensorProto.FLOAT), name="maybe"))
    kept.graph.input.append(helper.make_tensor_value_info("cond", TensorProto.BOOL, []))
    if_node = next(n for n in rounded_graph(kept).graph.node if n.op_type == "If")
    assert if_node.attribute[0].g == branch(TensorProto.FLOAT)


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.graph.input[0].type.tensor_type.__setattr__("elem_type", TensorProto.FLOAT16),
     r"needs non-FP16 graph inputs"),
    (lambda m: m.graph.node.append(helper.make_node("EyeLike", ["Z"], ["eye"], dtype=TensorProto.FLOAT16,
                                                    name="eye")), r"EyeLike `eye`'s dtype attribute"),
    (lambda m: (m.graph.node.append(helper.make_node("Mystery", ["Y"], ["m"], domain="example.custom")),
                m.opset_import.append(helper.make_opsetid("example.custom", 1))), r"cannot type tensor `m`"),
])
def test_what_cannot_be_rounded_is_refused_not_run_unrounded(change, message):
    model = chain()
    change(model)
    with pytest.raises(ExportError, match=message + r".*--precision fp32"):
        rounded_graph(model)
