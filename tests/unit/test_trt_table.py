"""Table-driven tests of the static TensorRT checker: the cases are derived from the operator table file itself, so a
regenerated table is tested row by row without editing this file.

Every table in export/tensorrt/data is tested (10.1, 10.16, 11.1 ...). For every row: an unsupported op is refused; a
supported op with a clean node passes; input 0 of a type the row does not list is refused; each restriction (initializer
and build-time-constant inputs, constant limits, zero inputs, absent inputs and attributes, attribute values, output
counts, spatial and input ranks, input types) is refused when violated. Every restriction sentence of the source
operators.md is either such a rule or listed as unchecked with a reason. Ops missing from the table (every other
standard ONNX op, an invented op, a custom domain) are refused, and opsets outside the table's range are reported. A
restriction kind this file does not know fails the test: the checker and this test must learn it together.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.tensorrt import static_check as _checker  # noqa: E402
from support import ROOT, onnx_model as _graph, tensor_info as _io  # noqa: E402

# One table per TensorRT version, read here independently of the checker's cache.
TABLES = {version: json.loads(path.read_text()) for version, path in _checker.available_tables().items()}


def check(model, version):
    return _checker.check_model(model, "m", version)


KNOWN_RULES = {"initializer_input", "constant_input", "max_constant_input", "zero_input", "absent_input", "input_type",
               "attribute_in", "attribute_ones", "symmetric_pads", "absent_attributes", "max_outputs", "spatial_rank",
               "input_rank"}
DTYPES = {"FP32": TensorProto.FLOAT, "FP16": TensorProto.FLOAT16, "INT32": TensorProto.INT32,
          "INT8": TensorProto.INT8, "BOOL": TensorProto.BOOL, "INT64": TensorProto.INT64,
          "BF16": TensorProto.BFLOAT16, "DOUBLE": TensorProto.DOUBLE}
# Types a row never gains by the table's widening rules (INT32->INT64, FP16->BF16, FP32->DOUBLE): if a row does not
# list one of these, a tensor of that type must be refused.
PLAIN_TYPES = ("BOOL", "INT8", "INT32", "FP16", "FP32")
SKIP_TYPE_CHECK = {"Constant", "Cast", "ConstantOfShape"}  # no input 0 / typed by their output


def rows(predicate):
    return [pytest.param(version, op, row, id=f"{version}-{op}")
            for version, table in sorted(TABLES.items()) for op, row in sorted(table["operators"].items())
            if predicate(op, row)]


def restriction_cases():
    return [pytest.param(version, op, row, k, id=f"{version}-{op}-{rule['rule']}-{k}")
            for version, table in sorted(TABLES.items()) for op, row in sorted(table["operators"].items())
            if row["supported"] for k, rule in enumerate(row.get("restrictions", []))]


def opset_of(version):
    low, high = TABLES[version]["_meta"]["opset_range"]
    return max(low, min(17, high))


def node_model(op, row, *, version, input_type=None, rank=4, initializers=None, runtime=(), attributes=None,
               outputs=1, opset=None, omitted=()):
    """One node of ``op``: input 0 a graph input of ``input_type`` (rank ``rank``), further inputs initializers
    (``initializers``: index -> array) or graph inputs (``runtime``: indices)."""
    initializers = dict(initializers or {})
    arity = schema_arity(op, opset or opset_of(version))
    count = max([arity[0] - 1, 0, *initializers, *runtime]) + 1
    dtype = input_type or next((t for t in row.get("types", []) if t in DTYPES), "FP32")
    inputs, inits, names = [], [], []
    for i in range(count):
        name = f"in{i}"
        names.append(name)
        if i in initializers:
            inits.append(numpy_helper.from_array(np.asarray(initializers[i]), name))
        elif i == 0 or i not in runtime:  # data inputs: like input 0
            inputs.append(helper.make_tensor_value_info(name, DTYPES[dtype], [1] * (rank - 2) + [8, 8]))
        else:
            inputs.append(helper.make_tensor_value_info(name, TensorProto.INT64, [1]))
    out_names = [f"out{k}" for k in range(max(outputs, arity[1]))]
    names = ["" if i in omitted else n for i, n in enumerate(names)]  # "": an input left out (ONNX convention)
    inputs = [v for v in inputs if v.name in names]
    node = helper.make_node(op, names, out_names, name="n", **(attributes or {}))
    graph = helper.make_graph([node], "g", inputs, [helper.make_value_info(n, onnx.TypeProto()) for n in out_names],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset or opset_of(version))])


def schema_arity(op, opset):
    """(minimum inputs, minimum outputs) of a standard op; (1, 1) for ops ONNX does not define."""
    try:
        schema = onnx.defs.get_schema(op, opset)
    except onnx.defs.SchemaError:
        return 1, 1
    return max(schema.min_input, 1), max(schema.min_output, 1)


def needs_subgraph(op, version):
    """Control-flow ops (Loop, If, Scan...) need graph attributes: no one-node model for them."""
    try:
        schema = onnx.defs.get_schema(op, opset_of(version))
    except onnx.defs.SchemaError:
        return False
    return any(a.type == onnx.defs.OpSchema.AttrType.GRAPH and a.required for a in schema.attributes.values())


def clean_kwargs(row):
    """Arguments that satisfy every restriction of ``row``."""
    kwargs = {"initializers": {}, "attributes": {}, "rank": 4}
    for rule in row.get("restrictions", []):
        kind = rule["rule"]
        if kind in ("initializer_input", "constant_input"):
            kwargs["initializers"].setdefault(rule["index"], np.array([1], np.int64))
        elif kind == "max_constant_input":
            kwargs["initializers"][rule["index"]] = np.array([rule["max"]], np.int64)
        elif kind == "attribute_in":
            kwargs["attributes"][rule["name"]] = rule["allowed"][0]
        elif kind == "spatial_rank":
            kwargs["rank"] = 2 + rule["allowed"][0]
        elif kind == "input_rank":
            kwargs["rank"] = rule["allowed"][0]
        # zero_input, absent_input, input_type, attribute_ones, symmetric_pads, absent_attributes, max_outputs: a
        # node without that input or attribute, with one output, is clean.
    return kwargs


def problems(findings):
    return [f.problem for f in findings]


def test_every_restriction_kind_in_the_tables_is_known():
    kinds = {r["rule"] for t in TABLES.values() for row in t["operators"].values() for r in row.get("restrictions", [])}
    assert kinds <= KNOWN_RULES, f"restriction kinds without a test: {kinds - KNOWN_RULES}"


@pytest.mark.parametrize(("version", "op", "row"), rows(lambda op, row: not row["supported"]))
def test_an_unsupported_op_is_refused(version, op, row):
    found = problems(check(node_model(op, row, version=version, input_type="FP32"), version))
    assert found == ["not supported by TensorRT's ONNX parser"], found


@pytest.mark.parametrize(("version", "op", "row"), rows(lambda op, row: row["supported"] and op != "Constant"))
def test_a_supported_op_with_a_clean_node_passes(version, op, row):
    if needs_subgraph(op, version):  # Loop/If/Scan: no one-node model; their graph attributes are not table rules
        assert not row.get("restrictions"), f"{op}: restrictions without a test"
        return
    found = problems(check(node_model(op, row, version=version, **clean_kwargs(row)), version))
    # A one-node model's output type follows the op (QuantizeLinear writes UINT8), not the row under test.
    found = [p for p in found if not p.startswith("UINT8 network output")]
    assert found == [], found


@pytest.mark.parametrize(("version", "op", "row"), rows(
    lambda op, row: row["supported"] and op not in SKIP_TYPE_CHECK and any(t not in row["types"] for t in PLAIN_TYPES)))
def test_an_input_of_an_unlisted_type_is_refused(version, op, row):
    if needs_subgraph(op, version):
        return  # Loop/If/Scan: no one-node model (see above)
    bad = next(t for t in PLAIN_TYPES if t not in row["types"])
    found = problems(check(node_model(op, row, version=version, input_type=bad, **clean_kwargs(row)), version))
    assert any(f"is {bad}; supported" in p for p in found), found


@pytest.mark.parametrize(("version", "op", "row", "index"), restriction_cases())
def test_each_restriction_is_enforced(version, op, row, index):
    rule = row["restrictions"][index]
    kind = rule["rule"]
    kwargs = clean_kwargs(row)
    if kind in ("initializer_input", "constant_input"):
        kwargs["initializers"].pop(rule["index"])
        kwargs["runtime"] = (rule["index"],)  # the same input, a network input's values
    elif kind == "absent_input":
        kwargs["runtime"] = (rule["index"],)
    elif kind == "zero_input":
        kwargs["initializers"][rule["index"]] = np.array([1], np.int8)
    elif kind == "input_type":
        kwargs["initializers"][rule["index"]] = np.array([1], np.int32)
        assert rule["allowed"] == ["INT64"], rule
    elif kind == "attribute_ones":
        kwargs["attributes"][rule["name"]] = [2] * (kwargs["rank"] - 2)
    elif kind == "symmetric_pads":
        kwargs["attributes"][rule["name"]] = [0] * (kwargs["rank"] - 2) + [1] * (kwargs["rank"] - 2)
    elif kind == "absent_attributes":
        kwargs["attributes"][rule["names"][0]] = 1
    elif kind == "max_constant_input":
        kwargs["initializers"][rule["index"]] = np.array([rule["max"] + 1], np.int64)
    elif kind == "attribute_in":
        allowed = rule["allowed"]
        kwargs["attributes"][rule["name"]] = "unsupported_value" if isinstance(allowed[0], str) else max(allowed) + 1
    elif kind == "max_outputs":
        kwargs["outputs"] = rule["max"] + 1
    elif kind == "spatial_rank":
        kwargs["rank"] = 2 + next(r for r in range(1, 6) if r not in rule["allowed"])
    elif kind == "input_rank":
        kwargs["rank"] = next(r for r in range(2, 8) if r not in rule["allowed"])
    else:
        pytest.fail(f"unknown restriction kind {kind!r}")
    found = problems(check(node_model(op, row, version=version, **kwargs), version))
    assert any(rule["text"] in p for p in found), (rule, found)


def test_a_missing_required_initializer_input_is_refused():
    for version, table in TABLES.items():
        for op, row in table["operators"].items():
            for rule in row.get("restrictions", []):
                if rule["rule"] in ("initializer_input", "constant_input") and not rule.get("optional") \
                        and rule["index"] > 0:
                    kwargs = clean_kwargs(row)
                    kwargs["initializers"].pop(rule["index"])
                    model = node_model(op, row, version=version, omitted=(rule["index"],), **kwargs)
                    found = problems(check(model, version))
                    assert any(f"input {rule['index']} missing" in p for p in found), (op, found)


def _sentences(text):
    """The restriction column split into sentences (at '. ' and <br />), independently of the generator."""
    return [s.strip() for s in re.split(r"(?<=\.)\s+|<br\s*/?>", text) if s.strip()]


@pytest.mark.parametrize("version", sorted(TABLES))
def test_every_restriction_sentence_is_a_rule_or_unchecked_with_a_reason(version):
    """No silent drops: each sentence of a supported row's Restrictions text is the text of a rule the checker
    enforces, or listed under `unchecked` with a reason (scripts/trt_ops_table.py UNCHECKED)."""
    rules = unchecked = 0
    for op, row in TABLES[version]["operators"].items():
        if not row["supported"]:
            assert not row["restrictions"] and "unchecked" not in row, op
            continue
        enforced = {r["text"] for r in row["restrictions"]}
        allowed = {u["text"]: u["reason"] for u in row.get("unchecked", [])}
        assert all(reason.strip() for reason in allowed.values()), (op, allowed)
        assert not enforced & set(allowed), (op, enforced & set(allowed))
        for sentence in _sentences(row.get("text", "")):
            assert sentence in enforced or sentence in allowed, f"{version} {op}: {sentence!r} dropped silently"
        rules += len(row["restrictions"])
        unchecked += len(allowed)
    assert rules > 0


def test_the_tables_are_what_the_saved_operators_md_files_generate():
    """scripts/trt_ops/operators_trt<version>.md + sources.json regenerate every committed table byte for byte."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "trt_ops_table.py"), "--all", "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((ROOT / "scripts" / "trt_ops" / "sources.json").read_text())
    assert sorted(v for v in saved if not v.startswith("_")) == sorted(TABLES)
    for version, table in TABLES.items():
        meta = table["_meta"]
        assert meta["tensorrt"] == version and meta["commit"] == saved[version]["commit"]
        assert re.fullmatch(r"[0-9a-f]{40}", meta["commit"]) and "onnx/onnx-tensorrt" in meta["source"]


def test_the_pooling_spatial_rank_rule_is_in_every_table():
    """operators.md (every release here): MaxPool/AveragePool "2D or 3D pooling only" is a spatial_rank rule."""
    for version, table in TABLES.items():
        for op in ("MaxPool", "AveragePool"):
            assert {"rule": "spatial_rank", "allowed": [2, 3]}.items() <= next(
                r for r in table["operators"][op]["restrictions"] if r["rule"] == "spatial_rank").items(), version


def _unlisted_standard_ops(version):
    listed = set(TABLES[version]["operators"])
    return sorted({s.name for s in onnx.defs.get_all_schemas() if s.domain in ("", "ai.onnx")} - listed)


@pytest.mark.parametrize("version", sorted(TABLES))
def test_every_op_missing_from_the_table_is_refused(version):
    unlisted = _unlisted_standard_ops(version) + ["NotARealOp"]
    for op in unlisted:
        found = problems(check(node_model(op, {}, version=version, input_type="FP32"), version))
        assert found == ["not in the TensorRT support list"], (op, found)


@pytest.mark.parametrize("version", sorted(TABLES))
def test_a_custom_domain_op_needs_a_plugin(version):
    model = node_model("Relu", {}, version=version, input_type="FP32")
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert problems(check(model, version)) == ["custom domain `com.example` needs a TensorRT plugin"]


@pytest.mark.parametrize("version", sorted(TABLES))
def test_opsets_outside_the_tables_range_are_reported(version):
    low, high = TABLES[version]["_meta"]["opset_range"]
    row = TABLES[version]["operators"]["Relu"]
    for opset, ok in ((low - 1, False), (low, True), (high, True), (high + 1, False)):
        found = problems(check(node_model("Relu", row, version=version, opset=opset), version))
        assert (not any("outside TensorRT" in p for p in found)) is ok, (opset, found)


# Restrictions the exported graphs depend on (Mask R-CNN: TopK's K limit; FPN/DeepLab: Resize modes; backbones:
# MaxPool without Indices). Pinned so that dropping them from a regenerated table fails here, not on a GPU node.
# Source: onnx-tensorrt docs/operators.md (the table's own `_meta.source`).
CRITICAL = [
    ("TopK", "max_constant_input", 1),
    ("MaxPool", "max_outputs", None),
    ("Resize", "attribute_in", "mode"),
    ("Resize", "attribute_in", "coordinate_transformation_mode"),
]


@pytest.mark.parametrize("version", sorted(TABLES))
@pytest.mark.parametrize(("op", "kind", "key"), CRITICAL)
def test_critical_restrictions_stay_in_the_table(version, op, kind, key):
    row = TABLES[version]["operators"][op]
    assert row["supported"]
    found = [r for r in row.get("restrictions", []) if r["rule"] == kind
             and (key is None or r.get("index") == key or r.get("name") == key)]
    assert found, f"{op}: {kind} {key} restriction missing from the TensorRT {version} table"


@pytest.mark.parametrize("version", sorted(TABLES))
def test_control_flow_and_unsupported_ops_stay_refused(version):
    """Loop/Scan with dynamic trip counts and these are what the Mask R-CNN export had to avoid."""
    ops = TABLES[version]["operators"]
    for op in ("Unique", "SequenceConstruct", "Optional"):
        assert op not in ops or not ops[op]["supported"], op


@pytest.mark.parametrize("version", sorted(TABLES))
def test_findings_name_the_model_node_and_op(version):
    model = _graph([helper.make_node("Unique", ["x"], ["y"], name="dedupe"), helper.make_node("Unique", ["y"], ["z"])],
                   [_io("x", TensorProto.FLOAT)], [_io("z", TensorProto.FLOAT)])
    findings = _checker.check_model(model, "mymodel", version)
    assert [(f.model, f.node, f.op) for f in findings] == [("mymodel", "dedupe", "Unique"), ("mymodel", "z", "Unique")]
    assert str(findings[0]) == "mymodel: node `dedupe` (Unique): not supported by TensorRT's ONNX parser"


@pytest.mark.parametrize("version", sorted(TABLES))
def test_opsets_of_other_domains_are_not_range_checked(version):
    model = _graph([helper.make_node("Relu", ["x"], ["y"])], [_io("x", TensorProto.FLOAT)],
                   [_io("y", TensorProto.FLOAT)], extra_opsets=[helper.make_opsetid("com.example", 1)])
    assert problems(check(model, version)) == []


@pytest.mark.parametrize("version", sorted(TABLES))
def test_a_constant_node_counts_as_an_initializer(version):
    """TopK's K from a Constant node is a build-time constant: accepted, and still held to the K limit."""
    limit = next(r["max"] for r in TABLES[version]["operators"]["TopK"]["restrictions"]
                 if r["rule"] == "max_constant_input")
    for k, ok in ((limit, True), (limit + 1, False)):
        nodes = [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([k], np.int64))),
                 helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")]
        model = _graph(nodes, [_io("x", TensorProto.FLOAT, (1, 5000))],
                       [_io("v", TensorProto.FLOAT, (1, k)), _io("i", TensorProto.INT64, (1, k))])
        found = problems(check(model, version))
        assert (found == []) is ok, (k, found)


@pytest.mark.parametrize("version", sorted(TABLES))
def test_uint8_only_at_the_network_boundary(version):
    """A UINT8 network input cast to FP32 is fine; a UINT8 tensor between two layers is not."""
    ok = _graph([helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT), helper.make_node("Relu", ["f"], ["y"])],
                [_io("x", TensorProto.UINT8)], [_io("y", TensorProto.FLOAT)])
    assert problems(check(ok, version)) == []
    inside = _graph([helper.make_node("Relu", ["x"], ["f"]), helper.make_node("Cast", ["f"], ["u"], to=TensorProto.UINT8),
                     helper.make_node("Cast", ["u"], ["y"], to=TensorProto.FLOAT)],
                    [_io("x", TensorProto.FLOAT)], [_io("y", TensorProto.FLOAT)])
    found = problems(check(inside, version))
    assert any("UINT8 tensor `u` inside the network" in p for p in found), found


@pytest.mark.parametrize("version", sorted(TABLES))
def test_widened_types_follow_the_tables_type_rules(version):
    """DOUBLE is accepted where FP32 is listed (the parser casts it down), and refused where FP32 is not."""
    ops = TABLES[version]["operators"]
    with_fp32 = next(op for op, row in sorted(ops.items()) if row["supported"] and "FP32" in row.get("types", [])
                     and op == "Relu")
    model = node_model(with_fp32, ops[with_fp32], version=version, input_type="DOUBLE")
    assert problems(check(model, version)) == []
    without = next(op for op, row in sorted(ops.items()) if row["supported"] and row.get("types")
                   and "FP32" not in row["types"] and op not in SKIP_TYPE_CHECK and not row.get("restrictions")
                   and not needs_subgraph(op, version))
    model = node_model(without, ops[without], version=version, input_type="DOUBLE")
    assert any("is DOUBLE; supported" in p for p in problems(check(model, version)))


@pytest.mark.parametrize("version", sorted(TABLES))
def test_a_file_is_checked_like_the_model(version, tmp_path):
    model = node_model("Unique", {}, version=version, input_type="FP32")
    onnx.save(model, str(tmp_path / "m.onnx"))
    from_file = _checker.check_onnx_file(tmp_path / "m.onnx", "m", version)
    assert [str(f) for f in from_file] == [str(f) for f in _checker.check_model(model, "m", version)] != []
