"""Regenerate a TensorRT ONNX operator table (export/tensorrt/data/onnx_ops_trt<version>.json) from onnx-tensorrt's
``docs/operators.md`` of that TensorRT release.

    python scripts/trt_ops_table.py operators.md --tensorrt 10.1 --source URL [--commit SHA]

Every row keeps its Supported flag, Supported Types and the Restrictions text verbatim; restrictions the static
checker can enforce on a graph are also turned into rules (below). A restriction text no rule covers is listed under
``unchecked`` so a reader sees what the checker does not test.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parents[1] / "export" / "tensorrt" / "data"
# Which input index holds `axes`/`axis` for the ops whose restriction says it must be an initializer (ONNX opset 18+).
AXES_INPUT = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "Pad": 3, "CumSum": 1, **{f"Reduce{r}": 1 for r in (
    "L1", "L2", "LogSum", "LogSumExp", "Max", "Mean", "Min", "Prod", "Sum", "SumSquare")}}
RESIZE_ATTRS = {  # restriction phrase -> ONNX attribute and its default
    "transformation modes": ("coordinate_transformation_mode", "half_pixel"),
    "resize modes": ("mode", "nearest"),
    "nearest modes": ("nearest_mode", "round_prefer_floor"),
}


def rules_for(op: str, text: str) -> tuple[list[dict], list[str]]:
    rules: list[dict] = []
    unchecked: list[str] = []
    for sentence in filter(None, (s.strip() for s in re.split(r"(?<=\.)\s+|<br\s*/?>", text))):
        low = sentence.lower()
        if re.search(r"`ax(es|is)` must be (an initializer|a constant tensor)", sentence) and op in AXES_INPUT:
            rules.append({"rule": "initializer_input", "index": AXES_INPUT[op], "optional": op != "CumSum",
                          "text": sentence})
        elif m := re.search(r"`K` input must be less than (\d+)", sentence):
            rules.append({"rule": "max_constant_input", "index": 1, "max": int(m.group(1)) - 1, "text": sentence})
        elif "`sorted` must be 1" in sentence:
            rules.append({"rule": "attribute_in", "name": "sorted", "allowed": [1], "default": 1, "text": sentence})
        elif "`indices` output tensor unsupported" in low:
            rules.append({"rule": "max_outputs", "max": 1, "text": sentence})
        elif "`reduction` is not supported" in low:
            rules.append({"rule": "attribute_in", "name": "reduction", "allowed": ["none"], "default": "none",
                          "text": sentence})
        elif "antialiasing is not supported" in low:
            rules.append({"rule": "attribute_in", "name": "antialias", "allowed": [0], "default": 0,
                          "text": sentence})
        elif op == "Resize" and (key := next((k for k in RESIZE_ATTRS if k in low), None)):
            name, default = RESIZE_ATTRS[key]
            rules.append({"rule": "attribute_in", "name": name, "allowed": re.findall(r"`([a-z_]+)`", sentence),
                          "default": default, "text": sentence})
        else:
            unchecked.append(sentence)
    return rules, unchecked


def parse(markdown: str) -> tuple[dict, dict]:
    header = {}
    if m := re.search(r"supports operators in the inclusive range of opset (\d+) to opset (\d+)", markdown):
        header["opset_range"] = [int(m.group(1)), int(m.group(2))]
    if m := re.search(r"supports the following ONNX data types: ([^\n]+)", markdown):
        header["data_types"] = m.group(1).strip()
    header["notes"] = [line.lstrip("> ").strip() for line in markdown.splitlines() if line.startswith("> Note")]
    ops = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", cells[0]) or cells[0] == "Operator":
            continue
        supported = cells[1].upper().startswith("Y")
        types = [t.strip().replace("INF64", "INT64") for t in cells[2].split(",")] if len(cells) > 2 and cells[2] \
            else []
        text = cells[3] if len(cells) > 3 else ""
        rules, unchecked = rules_for(cells[0], text)
        ops[cells[0]] = {"supported": supported, "types": [t for t in types if t], "restrictions": rules,
                         **({"unchecked": unchecked} if unchecked else {}), **({"text": text} if text else {})}
    return header, ops


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("markdown", type=Path, help="onnx-tensorrt docs/operators.md of the release")
    p.add_argument("--tensorrt", required=True, help="TensorRT major.minor the file documents, e.g. 10.1")
    p.add_argument("--source", required=True, help="where the file came from (URL with the branch or tag)")
    p.add_argument("--commit", default="", help="onnx-tensorrt commit the file was read at")
    args = p.parse_args(argv)
    header, ops = parse(args.markdown.read_text())
    if "opset_range" not in header or len(ops) < 100:
        print(f"error: {args.markdown} does not look like onnx-tensorrt's operators.md", file=sys.stderr)
        return 1
    table = {"_meta": {"tensorrt": args.tensorrt, "source": args.source, "commit": args.commit,
                       "generated_by": "scripts/trt_ops_table.py", **header,
                       "type_rules": {"UINT8": "only as a network input or output, converted by a Cast from/to "
                                               "FP32 or FP16 (operators.md note; NvInfer.h DataType::kUINT8)",
                                      "DOUBLE": "cast down to FLOAT by the parser: accepted wherever FP32 is listed"},
                       "not_listed": "an op missing from this table is treated as unsupported"},
             "operators": ops}
    out = OUT_DIR / f"onnx_ops_trt{args.tensorrt}.json"
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {len(ops)} operators, {sum(o['supported'] for o in ops.values())} supported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
