"""Static TensorRT compatibility check: every node of an exported ONNX graph against the ONNX operators, data types
and restrictions that TensorRT 10's ONNX parser supports (``export/data/trt10_onnx_ops.json``, transcribed from
onnx-tensorrt's operator documentation). Runs anywhere: no TensorRT needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import require

if TYPE_CHECKING:
    import onnx

SUPPORT_FILE = Path(__file__).parent / "data" / "trt10_onnx_ops.json"

# ONNX TensorProto element type -> the names the support matrix uses.
ELEM_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16", 11: "DOUBLE",
              16: "BF16", 4: "UINT16", 5: "INT16", 8: "STRING", 12: "UINT32", 13: "UINT64"}
# Which tensor's type the matrix's "Supported Types" column describes, when it is not input 0.
TYPED_OUTPUT_OPS = {"ConstantOfShape", "Cast"}


@dataclass(frozen=True)
class Finding:
    model: str
    node: str
    op: str
    problem: str

    def __str__(self) -> str:
        return f"{self.model}: node `{self.node}` ({self.op}): {self.problem}"


@lru_cache(maxsize=1)
def support_table() -> dict:
    return json.loads(SUPPORT_FILE.read_text())


def _allowed_types(listed: list[str]) -> set[str]:
    allowed = set(listed)
    if "INT32" in allowed:
        allowed.add("INT64")
    if "FP16" in allowed:
        allowed.add("BF16")
    if "FP32" in allowed:
        allowed.add("DOUBLE")
    return allowed


def _constant_values(model: "onnx.ModelProto") -> dict:
    numpy_helper = require("onnx").numpy_helper
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _attribute(node, name: str, default):
    onnx = require("onnx")
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def check_model(model: "onnx.ModelProto", model_name: str) -> list[Finding]:
    """Every problem TensorRT 10's ONNX parser would have with ``model`` (empty when it is fine)."""
    onnx = require("onnx")
    table = support_table()
    ops, meta = table["operators"], table["_meta"]
    findings: list[Finding] = []
    low, high = meta["opset_range"]
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx") and not low <= opset.version <= high:
            findings.append(Finding(model_name, "<model>", "opset", f"opset {opset.version} outside TensorRT "
                                    f"{meta['tensorrt']}'s supported range {low}..{high}"))
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    graph = inferred.graph
    types = {}
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.HasField("tensor_type"):
            types[value.name] = ELEM_TYPES.get(value.type.tensor_type.elem_type, "UNKNOWN")
    for init in graph.initializer:
        types[init.name] = ELEM_TYPES.get(init.data_type, "UNKNOWN")
    io_names = {v.name for v in (*graph.input, *graph.output)}
    constants = _constant_values(inferred)

    for node in graph.node:
        name = node.name or (node.output[0] if node.output else "?")

        def fail(problem: str) -> None:
            findings.append(Finding(model_name, name, node.op_type, problem))

        if node.domain not in ("", "ai.onnx"):
            fail(f"custom domain `{node.domain}` needs a TensorRT plugin")
            continue
        row = ops.get(node.op_type)
        if row is None or not row["supported"]:
            fail("not supported by TensorRT's ONNX parser" if row else "not in the TensorRT support list")
            continue
        if node.op_type == "Constant":
            continue
        allowed = _allowed_types(row["types"])
        typed = [node.input[0]] if node.input and node.op_type not in TYPED_OUTPUT_OPS else []
        if node.op_type in TYPED_OUTPUT_OPS:
            typed += [node.output[0]] + ([node.input[0]] if node.op_type == "Cast" else [])
        for tensor in typed:
            dtype = types.get(tensor)
            if dtype is None:
                continue  # shape inference could not type it; the parser decides at build time
            if dtype == "UINT8":
                if tensor not in io_names:
                    fail(f"UINT8 tensor `{tensor}` inside the network: TensorRT takes UINT8 only at network inputs "
                         "and outputs")
            elif dtype not in allowed:
                fail(f"tensor `{tensor}` is {dtype}; supported: {', '.join(row['types'])}")
        for rule in row.get("restrictions", []):
            kind = rule["rule"]
            if kind in ("initializer_input", "max_constant_input"):
                index = rule["index"]
                present = len(node.input) > index and node.input[index]
                if not present:
                    if not rule.get("optional") and kind == "initializer_input":
                        fail(f"input {index} missing: {rule['text']}")
                    continue
                value = constants.get(node.input[index])
                if value is None:
                    fail(f"input {index} (`{node.input[index]}`) is computed at run time: {rule['text']}")
                elif kind == "max_constant_input" and int(value.max()) > rule["max"]:
                    fail(f"{int(value.max())} exceeds the limit: {rule['text']}")
            elif kind == "attribute_in":
                value = _attribute(node, rule["name"], rule["default"])
                if value not in rule["allowed"]:
                    fail(f"{rule['name']}={value!r} unsupported: {rule['text']}")
            elif kind == "max_outputs":
                if sum(1 for o in node.output if o) > rule["max"]:
                    fail(rule["text"])
    return findings


def check_onnx_file(path: Path, model_name: str) -> list[Finding]:
    onnx = require("onnx")
    return check_model(onnx.load(str(path)), model_name)

