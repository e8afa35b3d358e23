"""Graph rewrites that make exported graphs parse in TensorRT and still run (bit for bit) in ONNX Runtime.

Each rewrite preserves the graph's meaning exactly; the parity check and the FP16 gate run on the rewritten graph.
The rules come from onnx-tensorrt's ``docs/operators.md`` (10.1-GA 96e78110, 10.16 6bde6596 and 11.1 7c51a63a: all
three keep NonZero at FP32/FP16 and the UINT8 network-I/O note, so every rewrite below is still needed with the 11.1
table; the tables in ``export/tensorrt/data`` record the sources) and TensorRT's type rules for UINT8 (``NvInfer.h``
``DataType::kUINT8``: network I/O only, converted by a cast to/from FP32 or FP16):

- ``NonZero`` takes FP32/FP16 only: a BOOL/integer input gets a ``Cast`` to FLOAT in front (torchvision's
  ``torch.where(mask)`` exports NonZero on BOOL masks).
- A UINT8 network input may only feed a ``Cast`` to FLOAT/FLOAT16: a ``Shape``/``Size`` that reads it directly reads
  the float cast instead (same shape). The exporter emits ``Shape(IMAGE)`` for the DeepLabV3 upsampling size.
- A ``Cast`` to UINT8 must come from FLOAT/FLOAT16 and one from UINT8 must go to FLOAT/FLOAT16: ``ArgMax``'s INT64
  class ids become ``Cast(INT64 -> FLOAT) -> Cast(FLOAT -> UINT8)`` (exact: class ids < 256 by the spec's
  ``mask_dtype`` rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from export.errors import require

if TYPE_CHECKING:
    import onnx

FLOAT_TYPES = (1, 10)  # TensorProto.FLOAT, FLOAT16
UINT8 = 2
SHAPE_ONLY_OPS = frozenset({"Shape", "Size"})  # read only their input's shape, never its values


def _types(model) -> dict[str, int]:
    onnx = require("onnx")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({t.name: t.data_type for t in graph.initializer})
    return types


def _cast_to(node) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None


def make_tensorrt_friendly(model: "onnx.ModelProto") -> tuple["onnx.ModelProto", list[str]]:
    """Rewrite ``model`` in place where needed; return it and a line per rewrite made."""
    require("onnx")
    from onnx import TensorProto, helper

    def to_float(source: str, output: str, name: str):
        return helper.make_node("Cast", [source], [output], to=TensorProto.FLOAT, name=name)

    types = _types(model)
    graph = model.graph
    done: list[str] = []
    name_of = TensorProto.DataType.Name
    new_nodes = []
    uint8_inputs = {v.name for v in graph.input if v.type.tensor_type.elem_type == UINT8}
    float_view: dict[str, str] = {}  # UINT8 input -> the output of a Cast of it to float
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in uint8_inputs and _cast_to(node) in FLOAT_TYPES:
            float_view.setdefault(node.input[0], node.output[0])

    for node in graph.node:
        if node.op_type == "NonZero" and types.get(node.input[0]) not in FLOAT_TYPES:
            source, elem = node.input[0], types.get(node.input[0]) or 0
            as_float = f"{source}__as_float"
            new_nodes.append(to_float(source, as_float, f"{node.name}__cast_float"))
            node.input[0] = as_float
            done.append(f"{node.name}: NonZero input `{source}` ({name_of(elem)}) cast to FLOAT")
        if node.op_type in SHAPE_ONLY_OPS and node.input[0] in uint8_inputs:
            source = node.input[0]
            if source not in float_view:
                float_view[source] = f"{source}__as_float"
                new_nodes.append(to_float(source, float_view[source], f"{source}__cast_float"))
            node.input[0] = float_view[source]
            done.append(f"{node.name}: {node.op_type} reads UINT8 input `{source}` through its float cast")
        to = _cast_to(node)
        if to is not None:
            src = types.get(node.input[0])
            if (to == UINT8 and src not in FLOAT_TYPES) or (src == UINT8 and to not in FLOAT_TYPES):
                via = f"{node.input[0]}__via_float"
                new_nodes.append(to_float(node.input[0], via, f"{node.name}__via_float"))
                node.input[0] = via
                done.append(f"{node.name}: Cast {name_of(src or 0)} -> {name_of(to)} goes through FLOAT")
        new_nodes.append(node)
    if not done:
        return model, done
    del graph.node[:]
    graph.node.extend(_toposort(new_nodes, {v.name for v in graph.input} | {t.name for t in graph.initializer}))
    return model, done


def _toposort(nodes: list, available: set[str]) -> list:
    """Nodes in an order where every input is produced first (inserted Casts go before their consumers)."""
    ordered, pending, ready = [], list(nodes), set(available) | {""}
    while pending:
        progress = False
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
                progress = True
            else:
                rest.append(node)
        if not progress:  # inputs from outer scopes or a cycle: keep the remaining order
            ordered.extend(rest)
            break
        pending = rest
    return ordered
