"""Graph rewrites (onnx-graphsurgeon) that make exported graphs parse in TensorRT 10 and still run in ONNX Runtime.

Each rewrite preserves the graph's meaning exactly; the parity check runs on the rewritten graph.

- ``NonZero`` on BOOL/integer input: TensorRT's NonZero takes FP32/FP16 only, so a ``Cast`` to FLOAT goes in front
  (torchvision's ``torch.where(mask)`` in the RPN and RoI heads exports NonZero on BOOL masks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from export.errors import require

if TYPE_CHECKING:
    import onnx

FLOAT_ONLY_INPUT_OPS = ("NonZero",)


def make_tensorrt_friendly(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", list[str]]:
    """Return the rewritten model and a line per rewrite made."""
    onnx = require("onnx")
    gs = require("onnx_graphsurgeon", "onnx-graphsurgeon")
    import numpy as np

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    types = {v.name: v.type.tensor_type.elem_type for v in (*inferred.graph.value_info, *inferred.graph.input)}
    graph = gs.import_onnx(model)
    done: list[str] = []
    for node in list(graph.nodes):
        if node.op != "NonZero":
            continue
        source = node.inputs[0]
        elem = types.get(source.name)
        if elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            continue
        as_float = gs.Variable(f"{source.name}__as_float", dtype=np.float32, shape=source.shape)
        graph.nodes.append(gs.Node("Cast", name=f"{node.name}__cast_float", attrs={"to": onnx.TensorProto.FLOAT},
                                   inputs=[source], outputs=[as_float]))
        node.inputs[0] = as_float
        done.append(f"{node.name}: NonZero input `{source.name}` ({onnx.TensorProto.DataType.Name(elem or 0)}) "
                    "cast to FLOAT")
    if not done:
        return model, done
    graph.cleanup().toposort()
    rewritten = gs.export_onnx(graph)
    rewritten.ir_version = model.ir_version
    del rewritten.opset_import[:]
    rewritten.opset_import.extend(model.opset_import)
    return rewritten, done
