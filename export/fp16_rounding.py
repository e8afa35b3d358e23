"""The FP16 graph as a GPU computes it, run on CPU: every FP16 tensor rounded to FP16.

ONNX Runtime's CPU provider has no FP16 kernels for most of our ops on x86: it inserts casts and runs the FP16 region
of a ``--precision fp16`` graph in FP32 (profiled with ONNX Runtime 1.32: all 47 of the UNet's ``Conv`` kernels run
on ``float``), so only the weights and the region's inputs are rounded. A strongly typed TensorRT engine and the
onnxruntime CUDA provider store every FP16 tensor in FP16. ``rounded_graph`` makes the CPU run match that storage:
an all-FP32 graph in which each tensor the FP16 graph types FLOAT16 goes through ``Cast(FLOAT16)`` then
``Cast(FLOAT)`` right after its producer. Kernels still accumulate in FP32, as TensorRT's FP16 kernels do.

This is a slight over-estimate of the rounding: TensorRT fuses layers (Conv + bias + ReLU, element-wise chains) and
rounds only a fusion's output. The FP16 gate (``export.precision.check_fp16``) runs both this graph and the FP16
graph as it is, and the worse agreement decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.errors import ExportError, require

if TYPE_CHECKING:
    import onnx

    from export.spec import ModelSpec

ROUNDED_SUFFIX = "/fp16_rounded"


def rounded_graph(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """An FP32 copy of the mixed-precision ``model`` in which every FP16 tensor is rounded to FP16 where it is made.

    Refuses (ExportError) what it cannot round: an output whose type shape inference cannot tell, FP16 graph inputs,
    FP16 inside subgraphs, local functions or sparse initializers, and ``dtype`` attributes asking for FP16."""
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from export.precision import tensor_types

    fp16 = TensorProto.FLOAT16
    _refuse_what_cannot_be_rounded(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)  # a typed copy to rewrite
    graph = model.graph
    types = tensor_types(model, infer=False)
    untyped = [name for node in graph.node for name in node.output if name and types.get(name, "UNDEFINED") ==
               "UNDEFINED"]
    if untyped:
        raise ExportError(f"FP16 rounding emulation cannot type tensor `{untyped[0]}` ({len(untyped)} untyped); "
                          f"{FP32_HINT}")
    rounded = {name for name, kind in types.items() if kind == "FLOAT16"}
    rounded -= {t.name for t in graph.initializer}  # FP16 weights are exact in FP32: widen them, nothing to round

    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == fp16:
            graph.initializer[i].CopyFrom(
                numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
    for value in (*graph.value_info, *graph.output):
        if value.type.tensor_type.elem_type == fp16:
            value.type.tensor_type.elem_type = TensorProto.FLOAT

    nodes = []
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == fp16:
                attribute.i = TensorProto.FLOAT
            elif attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == fp16:
                attribute.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(attribute.t).astype(np.float32), attribute.t.name))
        nodes.append(node)
        for k, name in enumerate(node.output):
            if name in rounded:
                node.output[k] = name + ROUNDED_SUFFIX + "/in"
                nodes.append(helper.make_node("Cast", [node.output[k]], [name + ROUNDED_SUFFIX], to=fp16,
                                              name=name + ROUNDED_SUFFIX + "/to_fp16"))
                nodes.append(helper.make_node("Cast", [name + ROUNDED_SUFFIX], [name], to=TensorProto.FLOAT,
                                              name=name + ROUNDED_SUFFIX + "/to_fp32"))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


FP32_HINT = "export with --precision fp32"


def _refuse_what_cannot_be_rounded(model: "onnx.ModelProto") -> None:
    from onnx import AttributeProto, TensorProto

    fp16 = TensorProto.FLOAT16
    graph = model.graph
    if any(v.type.tensor_type.elem_type == fp16 for v in graph.input):
        raise ExportError(f"FP16 rounding emulation needs non-FP16 graph inputs; {FP32_HINT}")
    if any(t.values.data_type == fp16 for t in graph.sparse_initializer):
        raise ExportError(f"FP16 rounding emulation does not handle FP16 sparse initializers; {FP32_HINT}")
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "dtype" and attribute.type == AttributeProto.INT and attribute.i == fp16:
                raise ExportError(f"FP16 rounding emulation does not handle {node.op_type} `{node.name}`'s dtype "
                                  f"attribute; {FP32_HINT}")
            if _subgraph_declares_fp16(attribute):
                raise ExportError(f"FP16 rounding emulation does not round inside subgraphs ({node.op_type} "
                                  f"`{node.name}` has FP16 tensors); {FP32_HINT}")
    for function in model.functions:
        if any(_declares_fp16_node(n) for n in function.node):
            raise ExportError(f"FP16 rounding emulation does not round inside local function `{function.name}`; "
                              f"{FP32_HINT}")


def _declares_fp16_node(node: "onnx.NodeProto") -> bool:
    from onnx import AttributeProto, TensorProto

    fp16 = TensorProto.FLOAT16
    for attribute in node.attribute:
        if attribute.type == AttributeProto.INT and attribute.name in ("to", "dtype") and attribute.i == fp16:
            return True
        if attribute.type == AttributeProto.TENSOR and attribute.t.data_type == fp16:
            return True
        if _subgraph_declares_fp16(attribute):
            return True
    return False


def _subgraph_declares_fp16(attribute: "onnx.AttributeProto") -> bool:
    from onnx import AttributeProto

    return attribute.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) and any(
        _declares_fp16(sub) for sub in [attribute.g, *attribute.graphs])


def _declares_fp16(graph: "onnx.GraphProto") -> bool:
    """Whether ``graph`` makes or declares an FP16 tensor: initializers, typed values, casts, constants."""
    from onnx import TensorProto

    fp16 = TensorProto.FLOAT16
    return (any(t.data_type == fp16 for t in graph.initializer)
            or any(v.type.tensor_type.elem_type == fp16 for v in (*graph.input, *graph.output, *graph.value_info))
            or any(_declares_fp16_node(n) for n in graph.node))


def run_rounded(onnx_path: Path, spec: "ModelSpec", images: np.ndarray) -> dict[str, np.ndarray]:
    """``onnx_path``'s FP16 graph on CPU with every FP16 tensor rounded; the outputs the graph declares FP16 come back
    as FP16 (their values are FP16 already), the others as computed."""
    from onnx import TensorProto

    from export.metadata import load_onnx
    from export.parity import ort_session, run_onnxruntime

    model = load_onnx(onnx_path)
    declared_fp16 = {o.name for o in model.graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT16}
    # Op by op as written: no fusion across a Cast pair, nothing folded away.
    session = ort_session(rounded_graph(model).SerializeToString(), optimise=False)
    outputs = run_onnxruntime(onnx_path, spec, images, session=session)
    return {name: value.astype(np.float16) if name in declared_fp16 else value for name, value in outputs.items()}
