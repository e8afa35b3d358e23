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
    """An FP32 copy of the mixed-precision ``model`` in which every FP16 tensor is rounded to FP16 where it is made."""
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from export.precision import tensor_types

    fp16 = TensorProto.FLOAT16
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for node in graph.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ExportError(f"FP16 rounding emulation does not handle subgraphs ({node.op_type} `{node.name}`).")
    if any(v.type.tensor_type.elem_type == fp16 for v in graph.input):
        raise ExportError("FP16 rounding emulation needs non-FP16 graph inputs.")
    rounded = {name for name, kind in tensor_types(model).items() if kind == "FLOAT16"}
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
            elif attribute.name == "dtype" and attribute.i == fp16:
                raise ExportError(f"FP16 rounding emulation does not handle {node.op_type}'s dtype attribute.")
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


def run_rounded(onnx_path: Path, spec: "ModelSpec", images: np.ndarray) -> dict[str, np.ndarray]:
    """``onnx_path``'s FP16 graph on CPU with every FP16 tensor rounded; outputs in the spec's dtypes."""
    ort = require("onnxruntime")
    from export.metadata import load_onnx

    options = ort.SessionOptions()
    # Graph optimisations could fold a Cast(FLOAT16) -> Cast(FLOAT) pair away; the point is to keep every one.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(rounded_graph(load_onnx(onnx_path)).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    outputs = session.run(spec.output_names, {spec.image.name: images})
    return {out.name: value.astype(out.np_dtype, copy=False) for out, value in zip(spec.outputs, outputs)}
