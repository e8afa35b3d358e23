"""Wrap an imported network in the segserve contract, in ONNX itself (no PyTorch round trip).

    IMAGE uint8 [N, H, W, 3] -> Cast -> Transpose -> x * scale + shift (the spec's mean/std) -> the network
    -> its score map, as float32 (bilinear Resize to H x W when the network returns another size)
    -> scores:     ArgMax over C                                   -> MASK uint8 [N, H, W]  (+ PROBS softmax)
    -> foreground: [Sigmoid] [per-image min-max] > threshold      -> MASK uint8 [N, H, W]  (+ PROBS (1-p, p))

The network's own tensors are prefixed ``net/`` so they cannot collide with ours; nodes that do not feed the chosen
output are dropped. Operator forms follow the network's opset (ONNX ``Reduce*`` and ``Squeeze`` moved their axes
from an attribute to an input at opsets 13/18; ``Softmax`` at opset < 13 flattens trailing axes, so it is spelled
out there). Source: the ONNX operator changelog, onnx/onnx docs/Changelog.md (ReduceSum-13, ReduceMax-18,
Squeeze-13, Softmax-13).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from export.errors import require
from export.importer.source import SourceGraph, load
from export.spec import ModelSpec

if TYPE_CHECKING:
    import onnx

PREFIX = "net/"
EPSILON = 1e-12  # min-max of a constant map: divide by this instead of 0 (the map becomes all 0)


def normaliser_constants(spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift), each float32 [1, 3, 1, 1]: normalised = pixel * scale + shift = (pixel/255 - mean) / std."""
    mean = np.asarray(spec.mean, dtype=np.float64).reshape(1, 3, 1, 1) * 255.0
    std = np.asarray(spec.std, dtype=np.float64).reshape(1, 3, 1, 1) * 255.0
    return (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)


class _Builder:
    """Appends nodes and constants to a graph, spelling each op in the form the opset knows."""

    def __init__(self, graph, opset: int) -> None:
        self.onnx = require("onnx")
        self.graph, self.opset, self.count = graph, opset, 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"seg/{stem}_{self.count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.graph.initializer.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or self.name(op.lower())
        self.graph.node.append(self.onnx.helper.make_node(op, inputs, [output], name=self.name(op), **attrs))
        return output

    def reduce(self, op: str, x: str, axes: list[int]) -> str:
        moved = 13 if op == "ReduceSum" else 18  # opset where `axes` became an input
        if self.opset >= moved:
            return self.node(op, [x, self.const("axes", np.array(axes, np.int64))], keepdims=1)
        return self.node(op, [x], axes=axes, keepdims=1)

    def squeeze(self, x: str, axis: int, output: str | None = None) -> str:
        if self.opset >= 13:
            return self.node("Squeeze", [x, self.const("axes", np.array([axis], np.int64))], output)
        return self.node("Squeeze", [x], output, axes=[axis])

    def softmax_channels(self, x: str) -> str:
        if self.opset >= 13:
            return self.node("Softmax", [x], axis=1)
        shifted = self.node("Sub", [x, self.reduce("ReduceMax", x, [1])])
        e = self.node("Exp", [shifted])
        return self.node("Div", [e, self.reduce("ReduceSum", e, [1])])


def _prune(graph, keep_output: str) -> None:
    """Drop the nodes and initializers that do not feed ``keep_output`` (other heads, side outputs)."""
    producer = {out: node for node in graph.node for out in node.output}
    needed, stack, seen = set(), [keep_output], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
        for attr in node.attribute:  # subgraphs (If/Loop) read outer tensors by name
            for sub in [attr.g, *attr.graphs]:
                for inner in sub.node:
                    stack.extend(i for i in inner.input if i)
    kept = [n for n in graph.node if id(n) in needed]
    del graph.node[:]
    graph.node.extend(kept)
    weights = [t for t in graph.initializer if t.name in seen]
    del graph.initializer[:]
    graph.initializer.extend(weights)


def wrap(source: SourceGraph, spec: ModelSpec) -> "onnx.ModelProto":
    """The served graph for ``source`` as ``spec`` describes it (metadata not yet set)."""
    onnx = require("onnx")
    from onnx import TensorProto, helper

    model = onnx.compose.add_prefix(load(source.path), PREFIX)
    graph = model.graph
    net_in, net_out = PREFIX + source.input_name, PREFIX + source.output_name
    _prune(graph, net_out)
    del graph.input[:]
    del graph.output[:]
    del graph.value_info[:]  # shapes recorded at a fixed batch/size would contradict the served ones
    b = _Builder(graph, source.opset)
    batch: int | str = "batch" if spec.max_batch_size > 1 else 1
    height, width = spec.height, spec.width
    first = len(graph.node)

    # uint8 NHWC -> float32 NCHW, normalised (cast before the transpose: TensorRT takes UINT8 only at the boundary)
    scale, shift = normaliser_constants(spec)
    x = b.node("Cast", ["IMAGE"], to=TensorProto.FLOAT)
    x = b.node("Transpose", [x], perm=[0, 3, 1, 2])
    x = b.node("Mul", [x, b.const("scale", scale)])
    if source.input_elem == TensorProto.FLOAT:
        b.node("Add", [x, b.const("shift", shift)], net_in)
    else:
        b.node("Cast", [b.node("Add", [x, b.const("shift", shift)])], net_in, to=source.input_elem)
    # the new nodes go in front: ONNX wants nodes in topological order
    prologue = list(graph.node[first:])
    del graph.node[first:]
    for i, node in enumerate(prologue):
        graph.node.insert(i, node)

    scores = b.node("Cast", [net_out], to=TensorProto.FLOAT)
    if (source.out_height, source.out_width) != (height, width):
        shape = b.node("Shape", [scores])
        n_c = b.node("Slice", [shape, b.const("start", np.array([0], np.int64)),
                               b.const("end", np.array([2], np.int64))])
        sizes = b.node("Concat", [n_c, b.const("hw", np.array([height, width], np.int64))], axis=0)
        roi, no_scales = b.const("roi", np.zeros(0, np.float32)), b.const("scales", np.zeros(0, np.float32))
        scores = b.node("Resize", [scores, roi, no_scales, sizes], mode="linear",
                        coordinate_transformation_mode="half_pixel")

    mask_type = TensorProto.UINT8 if spec.mask_dtype == "UINT8" else TensorProto.INT32
    if spec.output_kind == "scores":
        b.node("Cast", [b.node("ArgMax", [scores], axis=1, keepdims=0)], "MASK", to=mask_type)
        if spec.with_probs:
            probs = b.softmax_channels(scores) if spec.scores_are == "logits" else scores
    else:
        p = b.node("Sigmoid", [scores]) if spec.scores_are == "logits" else scores
        if spec.minmax:
            low = b.reduce("ReduceMin", p, [1, 2, 3])
            span = b.node("Max", [b.node("Sub", [b.reduce("ReduceMax", p, [1, 2, 3]), low]),
                                  b.const("eps", np.array(EPSILON, np.float32))])
            p = b.node("Div", [b.node("Sub", [p, low]), span])
        cut = b.const("threshold", np.array(spec.foreground_threshold, np.float32))
        above = b.node("Greater", [b.squeeze(p, 1), cut])
        b.node("Cast", [above], "MASK", to=mask_type)
        if spec.with_probs:
            probs = b.node("Concat", [b.node("Sub", [b.const("one", np.array(1.0, np.float32)), p]), p], axis=1)
    outputs = [helper.make_tensor_value_info("MASK", mask_type, [batch, height, width])]
    if spec.with_probs:
        b.node("Cast", [probs], "PROBS", to=TensorProto.FLOAT16)
        outputs.append(helper.make_tensor_value_info("PROBS", TensorProto.FLOAT16,
                                                     [batch, spec.num_classes, height, width]))
    graph.input.append(helper.make_tensor_value_info("IMAGE", TensorProto.UINT8, [batch, height, width, 3]))
    graph.output.extend(outputs)
    return model
