"""``--precision fp16``: a mixed-precision ONNX graph whose every tensor type is fixed.

TensorRT builds the graph strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``): it runs each tensor in
the type the graph gives it, so the precision is decided here, once, and ONNX Runtime on CPU runs the *same* graph in
``make test`` (the FP16 accuracy gate). The pass works on whatever graph the exporter produced (no knowledge of a
model's Python code), which is why it was chosen over exporting a half-precision PyTorch network: torch.export
rejects the half Mask R-CNN core (a data-dependent guard in torchvision's ``MultiScaleRoIAlign``), and a graph pass
keeps working when a model's Python code changes.

Rules:

- FP16 starts at the compute-heavy ops with weights (``Conv``, ``ConvTranspose``, ``Gemm``, ``MatMul``) and spreads
  forward through ops that are exact or well-conditioned in FP16 (activations, ``Add``/``Mul``, pooling, ``Resize``,
  ``Concat``, reshapes) when every float input they read is FP16 or a constant;
- everything else stays FP32: the uint8 -> float normalisation (it reads no FP16 tensor), reductions (``ReduceMean``,
  ``GlobalAveragePool``...), ``Softmax``/``ArgMax``, ``TopK``, ``Exp``/``Div`` (box decoding), ``NonMaxSuppression``,
  ``RoiAlign``, ``NonZero``...;
- the producers of precision sinks run FP32 back to (and including) their first weighted op: the logits feeding
  ``ArgMax``/``Softmax``, the objectness feeding ``TopK``/``NonMaxSuppression`` and the box deltas feeding ``Exp``;
- a ``Cast`` goes wherever an FP16 tensor meets an FP32 consumer (or the reverse); ``Shape`` and ``Cast`` read either.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from export.errors import ExportError, require

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")

WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
# op -> indices of the inputs that carry the op's float data (other float inputs, e.g. Resize scales, stay FP32).
FP16_SAFE_OPS: dict[str, tuple[int, ...] | None] = {
    **{op: None for op in ("Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Add", "Sub", "Mul",
                           "Max", "Min", "Concat", "Identity", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
                           "MaxPool", "AveragePool", "BatchNormalization", "Neg", "Clip")},
    "Resize": (0,), "Reshape": (0,), "Slice": (0,), "Gather": (0,), "Split": (0,), "Pad": (0, 2), "Expand": (0,),
    "Tile": (0,),
}
# Inputs that must stay FP32 because of what they feed (op -> input indices); their producers run FP32.
PRECISION_SINKS: dict[str, tuple[int, ...]] = {
    "ArgMax": (0,), "Softmax": (0,), "LogSoftmax": (0,), "TopK": (0,), "NonMaxSuppression": (0, 1), "Exp": (0,),
    "RoiAlign": (1,),
}
# Ops that read an FP16 tensor as it is (no Cast needed in front).
TYPE_AGNOSTIC = frozenset({"Shape", "Cast", "Size"})


def convert_to_fp16(model: "onnx.ModelProto",
                    fp32_ops: tuple[str, ...] = ()) -> tuple["onnx.ModelProto", dict[str, int]]:
    """Rewrite an FP32 graph into the mixed-precision graph described above; returns it and counts per category.

    ``fp32_ops``: op types the model's spec keeps in FP32 (``ModelSpec.fp32_op_types``) beyond the rules above:
    they never run in FP16 (reductions, Softmax and ArgMax are FP32 by the rules anyway; an imported model's spec
    adds e.g. Sigmoid)."""
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    graph = inferred.graph
    elem = {v.name: v.type.tensor_type.elem_type for v in (*graph.input, *graph.output, *graph.value_info)}
    initializers = {t.name: t for t in graph.initializer}
    for name, tensor in initializers.items():
        elem[name] = tensor.data_type
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    for name, node in constants.items():
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        if value is not None:
            elem[name] = value.data_type
    producer = {out: node for node in graph.node for out in node.output}
    FLOAT = TensorProto.FLOAT

    def is_const(name: str) -> bool:
        return name in initializers or name in constants

    safe_ops = {op: pos for op, pos in FP16_SAFE_OPS.items() if op not in fp32_ops}

    def data_inputs(node) -> list[str]:
        positions = safe_ops.get(node.op_type)
        return [name for i, name in enumerate(node.input)
                if name and elem.get(name) == FLOAT and (positions is None or i in positions)]

    # 1. Producers of precision sinks stay FP32, back to (and including) their first weighted op.
    forced_fp32: set[int] = set()
    stack = [node.input[i] for node in graph.node for i in PRECISION_SINKS.get(node.op_type, ())
             if i < len(node.input) and node.input[i]]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in forced_fp32 or node.op_type == "Constant":
            continue
        if node.op_type in WEIGHTED_OPS:
            forced_fp32.add(id(node))  # the walk stops at the first weighted op
        elif node.op_type in safe_ops:
            forced_fp32.add(id(node))
            stack.extend(data_inputs(node))

    # 2. Forward: which nodes run FP16 (graph order is topological).
    fp16_nodes: set[int] = set()
    fp16_tensors: set[str] = set()
    for node in graph.node:
        if id(node) in forced_fp32:
            continue
        if node.op_type in WEIGHTED_OPS:
            if not node.input or elem.get(node.input[0]) != FLOAT:
                continue
            run_fp16 = True
        elif node.op_type in safe_ops:
            inputs = data_inputs(node)
            run_fp16 = bool(inputs) and any(n in fp16_tensors for n in inputs) and all(
                n in fp16_tensors or is_const(n) for n in inputs)
        else:
            run_fp16 = False
        if run_fp16:
            fp16_nodes.add(id(node))
            fp16_tensors.update(o for o in node.output if o and elem.get(o) == FLOAT)

    # 3. Rewrite: FP16 copies of constants, Casts at every FP16/FP32 boundary, output types.
    counts: dict[str, int] = defaultdict(int)
    new_nodes = []
    casts: dict[tuple[str, int], str] = {}
    half_consts: dict[str, str] = {}

    def cast(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            suffix = "fp16" if to == TensorProto.FLOAT16 else "fp32"
            casts[key] = f"{name}__{suffix}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=f"{name}__cast_{suffix}"))
            counts["casts"] += 1
        return casts[key]

    def half_const(name: str) -> str:
        if name not in half_consts:
            if name in initializers:
                array = numpy_helper.to_array(initializers[name])
            else:
                array = numpy_helper.to_array(next(a.t for a in constants[name].attribute if a.name == "value"))
            half_consts[name] = f"{name}__fp16"
            graph.initializer.append(numpy_helper.from_array(array.astype("float16"), half_consts[name]))
            counts["fp16 constants"] += 1
        return half_consts[name]

    for node in list(graph.node):
        if id(node) in fp16_nodes:
            counts["fp16 nodes"] += 1
            for i, name in enumerate(node.input):
                if name in data_inputs(node) or (node.op_type in WEIGHTED_OPS and name and elem.get(name) == FLOAT):
                    if name in fp16_tensors:
                        continue
                    node.input[i] = half_const(name) if is_const(name) else cast(name, TensorProto.FLOAT16)
        elif node.op_type not in TYPE_AGNOSTIC:
            for i, name in enumerate(node.input):
                if name in fp16_tensors:
                    node.input[i] = cast(name, FLOAT)
        new_nodes.append(node)
    # A graph output produced in FP16 keeps its FP32 type for the outside: rename the producer's tensor, cast back.
    for out in graph.output:
        if out.name in fp16_tensors:
            inner = f"{out.name}__fp16_out"
            for node in new_nodes:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if o == out.name else o for o in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=FLOAT, name=f"{out.name}__cast_out"))
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]  # intermediate types changed: let shape inference recompute them
    unused = {name for name in initializers if not any(name in n.input for n in graph.node)}
    kept = [t for t in graph.initializer if t.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not counts["fp16 nodes"]:
        raise ExportError("The FP16 pass found no convolution or matrix product to run in FP16.")
    onnx.checker.check_model(inferred)
    return inferred, dict(counts)


def tensor_types(model: "onnx.ModelProto", infer: bool = True) -> dict[str, str]:
    """Element type name of every typed tensor after shape inference (``export.fp16_rounding``, tests);
    ``infer=False``: of a model that already went through it."""
    onnx = require("onnx")
    graph = (onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True) if infer else model).graph
    types = {v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)
             for v in (*graph.input, *graph.output, *graph.value_info)}
    types.update({t.name: onnx.TensorProto.DataType.Name(t.data_type) for t in graph.initializer})
    return types


# The FP16 accuracy gate (issue #7): FP16 graph vs FP32 eager PyTorch. Semantic: pixel agreement; Mask R-CNN: the
# share of reference detections matched (same label, IoU > 0.9), matched boxes within 1 px, binarised masks.
FP16_PIXEL_AGREEMENT = 0.995
FP16_MATCHED_SHARE = 0.95
FP16_MATCH_IOU = 0.9
FP16_BOX_ERROR_PX = 1.0
FP16_MASK_AGREEMENT = 0.99


def fp16_gate(task: str, reference: dict, candidate: dict, *, max_detections: int = 0):
    """Compare FP32 ``reference`` outputs with FP16 ``candidate`` outputs (Triton names, whole batches); the worst
    image decides. Returns ``export.compare.Agreement`` with ``passed`` by the gate above."""
    import dataclasses

    import numpy as np

    from export.compare import Thresholds, compare_detections, compare_masks, detections_from_outputs

    limits = Thresholds(pixel_agreement=FP16_PIXEL_AGREEMENT, match_iou=FP16_MATCH_IOU,
                        box_error_px=FP16_BOX_ERROR_PX, mask_agreement=FP16_MASK_AGREEMENT)
    if task == "semantic":
        return compare_masks(np.asarray(reference["MASK"]), np.asarray(candidate["MASK"]), limits)
    results = []
    for b in range(len(reference["BOXES"])):
        r = compare_detections(detections_from_outputs(reference, b), detections_from_outputs(candidate, b),
                               max_detections=max_detections, limits=limits)
        share = _matched_share(r)
        ok = (share >= FP16_MATCHED_SHARE and r.max_box_error_px <= FP16_BOX_ERROR_PX
              and r.mask_agreement >= FP16_MASK_AGREEMENT)
        summary = (f"{share:.1%} of {r.reference_count} FP32 detections matched by FP16 (same label, IoU > "
                   f"{FP16_MATCH_IOU}; need >= {FP16_MATCHED_SHARE:.0%}; FP16 has {r.candidate_count}), max box "
                   f"error {r.max_box_error_px:.3f} px (<= {FP16_BOX_ERROR_PX}), binarised mask agreement "
                   f"{r.mask_agreement:.3%} (>= {FP16_MASK_AGREEMENT:.0%})")
        results.append(dataclasses.replace(r, passed=ok, summary=summary))
    failed = [r for r in results if not r.passed]
    return failed[0] if failed else min(results, key=_matched_share)


def default_precision(target: str, device: str) -> str:
    """FP16 for GPU targets (TensorRT, ONNX Runtime on GPU: the graph TensorRT builds strongly typed), FP32 on CPU."""
    return "fp16" if device == "gpu" and target in ("tensorrt", "onnxruntime") else "fp32"


def check_fp16(module, spec, onnx_path: "Path", images, enforce: bool = True):
    """The FP16 gate at export time: the FP16 graph vs the FP32 eager module (``fp16_agreement``); raises on failure.

    ``enforce=False`` (random weights, ``--weights none``) only warns: an untrained network's near-tied scores
    reorder under any rounding (measured: Mask R-CNN 75% matched), and its masks mean nothing either way."""
    from export.parity import run_eager

    agreement = fp16_agreement(spec, run_eager(module, spec, images), onnx_path, images)
    if not agreement.passed:
        message = (f"FP16 accuracy gate failed for `{spec.name}` (FP16 ONNX vs FP32 PyTorch): {agreement.summary}. "
                   "Export with --precision fp32.")
        if enforce:
            raise ExportError(message)
        log.warning("%s (not enforced: random weights)", message)
    return agreement


def fp16_agreement(spec, reference: dict, onnx_path: "Path", images):
    """``fp16_gate`` for the FP16 graph at ``onnx_path`` against FP32 ``reference`` outputs, run twice on CPU: as it is
    in ONNX Runtime (whose CPU kernels compute the FP16 region in FP32) and with every FP16 tensor rounded as a GPU
    stores it (``export.fp16_rounding``). The worse run decides; the summary gives both."""
    import dataclasses

    from export.fp16_rounding import run_rounded
    from export.parity import check_output_types, run_onnxruntime

    runs = {}
    for label, run in (("as is", run_onnxruntime), ("every FP16 tensor rounded", run_rounded)):
        candidate = run(onnx_path, spec, images)
        check_output_types(spec, candidate)
        runs[label] = fp16_gate(spec.task, reference, candidate, max_detections=spec.max_detections)
    worst = min(runs.values(), key=lambda a: (a.passed, _score(a)))
    return dataclasses.replace(worst, summary="; ".join(f"{label}: {a.summary}" for label, a in runs.items()))


def _score(agreement) -> float:
    """What orders two passing agreements: pixel agreement (semantic) or the matched share (instance)."""
    return agreement.pixel_agreement if agreement.pixel_agreement is not None else _matched_share(agreement)


def _matched_share(agreement) -> float:
    """The share of the FP32 detections that FP16 matched (1.0 when there were none)."""
    return agreement.matched / agreement.reference_count if agreement.reference_count else 1.0
