"""Regenerate the TensorRT ONNX operator tables (export/tensorrt/data/onnx_ops_trt<version>.json) from onnx-tensorrt's
``docs/operators.md`` of each TensorRT release, saved in scripts/trt_ops/ as ``operators_trt<version>.md`` with its
source URL and commit in scripts/trt_ops/sources.json.

    python scripts/trt_ops_table.py --tensorrt 11.1      # one table from scripts/trt_ops/operators_trt11.1.md
    python scripts/trt_ops_table.py --all                # every saved release
    python scripts/trt_ops_table.py FILE.md --tensorrt 10.1 --source URL [--commit SHA]   # a file from elsewhere

Every row keeps its Supported flag, Supported Types and the Restrictions text verbatim. Each restriction sentence is
either turned into a rule the static checker enforces (RULES below) or listed under ``unchecked`` with the reason it is
not checked (UNCHECKED below). A sentence that is neither stops the generator: a new phrasing in a new release must
be decided on, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "export" / "tensorrt" / "data"
SOURCE_DIR = Path(__file__).resolve().parent / "trt_ops"
SOURCES = SOURCE_DIR / "sources.json"

# The input index of each input a restriction names (ONNX operator specs, opset 13+/18+ forms: `axes`/`axis`/`depth`
# as inputs; Attention-23, STFT-17, RotaryEmbedding-23, QuantizeLinear/DequantizeLinear, Dropout-12).
REDUCE_OPS = ("L1", "L2", "LogSum", "LogSumExp", "Max", "Mean", "Min", "Prod", "Sum", "SumSquare")
INPUT_INDEX = {("Slice", "axes"): 3, ("Squeeze", "axes"): 1, ("Unsqueeze", "axes"): 1, ("Pad", "axes"): 3,
               ("CumSum", "axis"): 1, ("OneHot", "depth"): 1, **{(f"Reduce{r}", "axes"): 1 for r in REDUCE_OPS},
               ("Attention", "past_key"): 4, ("Attention", "past_value"): 5, ("Attention", "nonpad_kv_seqlen"): 6,
               ("STFT", "frame_step"): 1, ("STFT", "window"): 2, ("RotaryEmbedding", "position_ids"): 3,
               ("QuantizeLinear", "y_zero_point"): 2, ("DequantizeLinear", "x_zero_point"): 2,
               ("Dropout", "is_training"): 2, ("Dropout", "is_traning"): 2}  # 10.1-GA's text has the typo
# Inputs that must be present; the others are optional (axes were attributes before opset 13/18).
REQUIRED_INPUTS = {("STFT", "frame_step"), ("CumSum", "axis"), ("OneHot", "depth")}
RESIZE_ATTRS = {  # restriction phrase -> ONNX attribute and its default
    "transformation modes": ("coordinate_transformation_mode", "half_pixel"),
    "resize modes": ("mode", "nearest"),
    "nearest modes": ("nearest_mode", "round_prefer_floor"),
    "aspect ratio policy": ("keep_aspect_ratio_policy", "stretch"),
}

# Restriction sentences the checker does not test, each with the reason. Keys are whole sentences as split below.
UNCHECKED = {
    "`Q`, `K`, `V` and `attn_mask ` must be 4D.":
        "not what the parser enforces: onnx-tensorrt's Attention importer reshapes 3D Q/K/V to 4D "
        "(onnxOpImporters.cpp at 6bde6596, importAttention: '3D case needs to be reshaped to 4D'); checking 4D "
        "would be stricter than TensorRT",
    "`q_num_heads` and `kv_num_heads` attributes are supported via being specified as the second dimension of `Q` "
    "and `K`/`V`'s shapes respectively.":
        "describes how the parser reads the head counts, not a restriction on the graph",
    "`seed` value is ignored by TensorRT":
        "behaviour, not a parse restriction: the node parses; its random values differ from ONNX Runtime's",
    "For bidirectional GRUs, activation functions must be the same for both the forward and reverse pass":
        "recurrent layers: segserve exports none; not checked",
    "For bidirectional LSTMs, activation functions must be the same for both the forward and reverse pass.":
        "recurrent layers: segserve exports none; not checked",
    "For bidirectional RNNs, activation functions must be the same for both the forward and reverse pass":
        "recurrent layers: segserve exports none; not checked",
    "Output tensors of the two conditional branches must have the same rank and must have different names":
        "a property of If's subgraphs: the checker does not descend into subgraphs",
    "Scan output length cannot be dynamic.":
        "decided by Loop's trip count at build time: not knowable from the graph alone",
    "The shape of Loop carried dependencies must be the same across all loop iterations.":
        "a run-time property of Loop's body: not knowable from the graph alone",
    "`input` must have static dimensions":
        "EyeLike: static or dynamic is TensorRT's view after its own shape propagation and the optimisation "
        "profile; segserve exports no EyeLike",
    "`axis` dimension of input must be a build-time constant":
        "Hardmax: static or dynamic is TensorRT's view after its own shape propagation and the optimisation "
        "profile; segserve exports no Hardmax",
    "When `scales` is a tensor input, `axes` must be an iota vector of length rank(input).":
        "Resize's `axes` attribute (opset 18+): segserve's exporters never set it; not checked",
    "Input must be real-valued.":
        "STFT: real vs complex input is a shape convention (last dimension 1 or 2); segserve exports no STFT",
}


def _names(sentence: str) -> list[str]:
    return re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)\s*`", sentence)


def _input_rules(op: str, sentence: str, rule: str, **extra) -> list[dict]:
    return [{"rule": rule, "index": INPUT_INDEX[op, name], **extra,
             **({} if rule == "absent_input" else {"optional": (op, name) not in REQUIRED_INPUTS})}
            for name in _names(sentence) if (op, name) in INPUT_INDEX]


def _attribute_in(name: str, allowed: list, default) -> list[dict]:
    return [{"rule": "attribute_in", "name": name, "allowed": allowed, "default": default}]


def rule_for(op: str, sentence: str) -> list[dict]:
    """The checker rules one restriction sentence of ``op`` turns into (without the sentence itself); [] when none."""
    low = sentence.lower()
    if re.search(r"_zero_point` must be (zero|0)$", sentence) or re.search(
            r"`is_trai?ning` must be an initializer and evaluate to False", sentence):
        return _input_rules(op, sentence, "zero_input")
    if re.search(r"must be (an initializer|a constant tensor)", sentence):
        # An ONNX Constant node counts: the parser imports it as weights.
        return _input_rules(op, sentence, "initializer_input")
    if re.search(r"must be (resolvable to a constant|a build-time constant)", sentence):
        # 10.14+ wording: TensorRT folds the input at build time (10.16's Squeeze importer hands any tensor to
        # INetworkDefinition::addSqueeze, onnxOpImporters.cpp at 6bde6596). Only a value computed from a network
        # input's data can never be folded, and only that is refused (export/tensorrt/static_check.py).
        return _input_rules(op, sentence, "constant_input")
    if m := re.search(r"`K` input must be less than (\d+)", sentence):
        return [{"rule": "max_constant_input", "index": 1, "max": int(m.group(1)) - 1}]
    if "`sorted` must be 1" in sentence:
        return _attribute_in("sorted", [1], 1)
    if re.search(r"output tensor unsupported|only the first output .* is supported|outputs are unsupported", low):
        return [{"rule": "max_outputs", "max": 1}]
    if re.search(r"`reduction` (is not supported|other than `none` is not supported)", sentence):
        return _attribute_in("reduction", ["none"], "none")
    if "antialiasing is not supported" in low:
        return _attribute_in("antialias", [0], 0)
    if op == "Resize" and (key := next((k for k in RESIZE_ATTRS if k in low), None)):
        name, default = RESIZE_ATTRS[key]
        return _attribute_in(name, re.findall(r"`([a-z_]+)`", sentence), default)
    if m := re.fullmatch(r"`(\w+)` attribute must be (\d+)\.?", sentence):  # LSTM input_forget/layout (default 0)
        return _attribute_in(m.group(1), [int(m.group(2))], 0)
    if op == "TensorScatter" and (m := re.fullmatch(r"`axis` must be (-?\d+)\.?", sentence)):  # ONNX default -2
        return _attribute_in("axis", [int(m.group(1))], -2)
    if m := re.fullmatch(r"(.*) attributes are unsupported\.?", sentence):
        return [{"rule": "absent_attributes", "names": _names(m.group(1))}]
    if re.search(r"inputs are unsupported\.?$", sentence):
        return _input_rules(op, sentence, "absent_input")
    if m := re.fullmatch(r"`(\w+)` must be (INT64|INT32)", sentence):
        return _input_rules(op, sentence, "input_type", allowed=[m.group(2)])
    if re.fullmatch(r"2D or 3D pooling only\.?", sentence, re.IGNORECASE):
        return [{"rule": "spatial_rank", "allowed": [2, 3]}]
    if sentence.startswith("`input` must have 1D or 2D spatial dimensions"):  # DeformConv
        return [{"rule": "spatial_rank", "allowed": [1, 2]}]
    if op == "GridSample" and sentence == "Input must be 4D input.":
        return [{"rule": "spatial_rank", "allowed": [2]}]
    if m := re.fullmatch(r"`(\w+)` and `(\w+)` must be (\d)D\.", sentence):  # TensorScatter past_cache, update
        return [{"rule": "input_rank", "indices": [0, 1], "allowed": [int(m.group(3))]}]
    if re.fullmatch(r"`dilations` must be empty or all ones", sentence):
        return [{"rule": "attribute_ones", "name": "dilations"}]
    if sentence.startswith("`pads` for the beginning and end along each spatial axis must be the same"):
        return [{"rule": "symmetric_pads", "name": "pads"}]
    return []


def sentences(text: str) -> list[str]:
    return [s for s in (s.strip() for s in re.split(r"(?<=\.)\s+|<br\s*/?>", text)) if s]


def rules_for(op: str, text: str) -> tuple[list[dict], list[dict], list[str]]:
    """(rules, unchecked sentences with their reasons, sentences neither covers)."""
    rules: list[dict] = []
    unchecked: list[dict] = []
    unknown: list[str] = []
    for sentence in sentences(text):
        if found := rule_for(op, sentence):
            rules.extend({**rule, "text": sentence} for rule in found)
        elif sentence in UNCHECKED:
            unchecked.append({"text": sentence, "reason": UNCHECKED[sentence]})
        else:
            unknown.append(sentence)
    return rules, unchecked, unknown


TYPE_NAME = re.compile(r"[A-Z][A-Z0-9]*")


def parse(markdown: str) -> tuple[dict, dict, list[str]]:
    header = {}
    if m := re.search(r"supports operators in the inclusive range of opset (\d+) to opset (\d+)", markdown):
        header["opset_range"] = [int(m.group(1)), int(m.group(2))]
    if m := re.search(r"supports the following ONNX data types: ([^\n]+)", markdown):
        header["data_types"] = m.group(1).strip()
    header["notes"] = [line.lstrip("> ").strip() for line in markdown.splitlines() if line.startswith("> Note")]
    ops, unknown = {}, []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"[A-Z][A-Za-z0-9]*", cells[0]) or cells[0] == "Operator":
            continue
        op = cells[0]
        supported = cells[1].upper().startswith("Y")
        listed = [t.strip().replace("INF64", "INT64") for t in cells[2].split(",")] if len(cells) > 2 else []
        listed = [t for t in listed if t]
        text = cells[3] if len(cells) > 3 else ""
        if listed and not all(TYPE_NAME.fullmatch(t) for t in listed):
            # 10.14+: DynamicQuantizeLinear (N) carries a sentence in the types column, not types.
            text, listed = (cells[2] + (" " + text if text else "")).strip(), []
        rules, unchecked, bad = rules_for(op, text) if supported else ([], [], [])
        unknown += [f"{op}: {s}" for s in bad]
        ops[op] = {"supported": supported, "types": listed, "restrictions": rules,
                   **({"unchecked": unchecked} if unchecked else {}), **({"text": text} if text else {})}
    return header, ops, unknown


def build_table(markdown: str, tensorrt: str, source: str, commit: str, note: str = "") -> tuple[dict, list[str]]:
    header, ops, unknown = parse(markdown)
    table = {"_meta": {"tensorrt": tensorrt, "source": source, "commit": commit,
                       **({"source_note": note} if note else {}),
                       "generated_by": "scripts/trt_ops_table.py", **header,
                       "type_rules": {"UINT8": "only as a network input or output, converted by a Cast from/to "
                                               "FP32 or FP16 (operators.md note; NvInfer.h DataType::kUINT8)",
                                      "DOUBLE": "cast down to FLOAT by the parser: accepted wherever FP32 is listed"},
                       "not_listed": "an op missing from this table is treated as unsupported",
                       "unsupported_rows": "an N row's text is kept verbatim; it has no rules (the op is refused)"},
             "operators": ops}
    return table, unknown


def write(markdown: str, tensorrt: str, source: str, commit: str, note: str = "", check: bool = False) -> int:
    table, unknown = build_table(markdown, tensorrt, source, commit, note)
    if "opset_range" not in table["_meta"] or len(table["operators"]) < 100:
        print(f"error: the TensorRT {tensorrt} file does not look like onnx-tensorrt's operators.md", file=sys.stderr)
        return 1
    if unknown:
        print(f"error: TensorRT {tensorrt}: restriction sentences no rule covers and UNCHECKED does not list "
              f"(add a rule or an UNCHECKED reason in {Path(__file__).name}):\n  " + "\n  ".join(unknown),
              file=sys.stderr)
        return 1
    out = OUT_DIR / f"onnx_ops_trt{tensorrt}.json"
    text = json.dumps(table, indent=1, sort_keys=True) + "\n"
    if check:
        if not out.exists() or out.read_text() != text:
            print(f"error: {out} differs from what {saved_markdown(tensorrt).relative_to(ROOT)} generates; run "
                  f"python scripts/trt_ops_table.py --tensorrt {tensorrt}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text)
    ops = table["operators"].values()
    print(f"{out}: {len(ops)} operators, {sum(o['supported'] for o in ops)} supported, "
          f"{sum(len(o['restrictions']) for o in ops)} rules, {sum(len(o.get('unchecked', [])) for o in ops)} "
          "unchecked sentences")
    return 0


def saved_markdown(tensorrt: str) -> Path:
    """The operators.md saved for TensorRT ``tensorrt`` (scripts/trt_ops/)."""
    return SOURCE_DIR / f"operators_trt{tensorrt}.md"


def saved_sources() -> dict[str, dict]:
    return {k: v for k, v in json.loads(SOURCES.read_text()).items() if not k.startswith("_")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("markdown", type=Path, nargs="?",
                   help="an operators.md from elsewhere (default: scripts/trt_ops/operators_trt<version>.md)")
    p.add_argument("--tensorrt", help="TensorRT major.minor the file documents, e.g. 11.1")
    p.add_argument("--all", action="store_true", help="regenerate every release saved in scripts/trt_ops/")
    p.add_argument("--source", help="where the file came from (URL); default: scripts/trt_ops/sources.json")
    p.add_argument("--commit", default="", help="onnx-tensorrt commit the file was read at")
    p.add_argument("--check", action="store_true", help="with --all: exit 1 if a table differs from its saved source")
    args = p.parse_args(argv)
    saved = saved_sources()
    if args.all:
        return max([write(saved_markdown(v).read_text(), v, s["source"], s["commit"], s.get("note", ""), args.check)
                    for v, s in saved.items()])
    if not args.tensorrt:
        p.error("--tensorrt VERSION or --all is required")
    if args.markdown is None:
        if args.tensorrt not in saved:
            print(f"error: no saved operators.md for TensorRT {args.tensorrt} in {SOURCES}; saved: "
                  f"{', '.join(saved)}", file=sys.stderr)
            return 1
        entry = saved[args.tensorrt]
        return write(saved_markdown(args.tensorrt).read_text(), args.tensorrt,
                     args.source or entry["source"], args.commit or entry["commit"], entry.get("note", ""))
    if not args.source:
        p.error("--source is required with a file from elsewhere")
    return write(args.markdown.read_text(), args.tensorrt, args.source, args.commit)


if __name__ == "__main__":
    sys.exit(main())
