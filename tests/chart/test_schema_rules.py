"""Every constraint of charts/segserve/values.schema.json rejects a bad value when the real helm renders the chart.

The cases are derived by walking the schema (enum, minimum, maximum, pattern, minLength, minItems, required,
additionalProperties: false), so a new constraint is tested without editing this file; a pinned list of critical
constraints fails if one of them is dropped from the schema (e.g. the `mode` enum: without it `--set mode=gpux`
silently rendered a CPU deployment). Each bad value must fail with helm's schema error naming that value's path.
"""

from __future__ import annotations

import json
import re

import pytest

from chart_support import CHART, helm

pytestmark = pytest.mark.chart

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
SCHEMA_ERROR = "values don't meet the specifications of the schema"


def walk(node: dict, path: tuple = ()):
    """Yield (path, schema node) for every object schema in the tree; ``"[]"`` in a path means an array item.
    A ``$ref`` (to the schema's own definitions) stands for the definition it names."""
    if "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].removeprefix("#/definitions/")]
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, (*path, name))
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], (*path, "[]"))


def _not_matching(pattern: str) -> str:
    for candidate in ("not valid!", "x y", "-1", "@", "s3:/", "UPPER CASE", "1.5.5"):
        if not re.search(pattern, candidate):
            return candidate
    raise AssertionError(f"no bad value for pattern {pattern!r}")


def constraints():
    """(path, kind, bad value) for each constraint in the schema; helm's message must name the path."""
    out = []
    for path, node in walk(SCHEMA):
        if "enum" in node:
            bad = (str(node["enum"][0]) + "x") if isinstance(node["enum"][0], str) else max(node["enum"]) + 1
            out.append((path, "enum", bad))
        if "minimum" in node:
            out.append((path, "minimum", node["minimum"] - 1))
        if "maximum" in node:
            out.append((path, "maximum", node["maximum"] + 1))
        if "exclusiveMinimum" in node:
            out.append((path, "exclusiveMinimum", node["exclusiveMinimum"]))
        if "pattern" in node:
            out.append((path, "pattern", _not_matching(node["pattern"])))
        if node.get("minLength"):
            out.append((path, "minLength", ""))
        if node.get("minItems"):
            out.append((path, "minItems", []))
        for key in node.get("required", []):
            out.append((path, f"required:{key}", key))
        if node.get("additionalProperties") is False and path:
            out.append((path, "additionalProperties", "unexpectedKey"))
    return out


CASES = constraints()


def _set_args(path: tuple, kind: str, bad) -> list[str]:
    """helm --set-json arguments that put ``bad`` where the constraint at ``path`` applies."""
    if "[]" in path:  # an array item: set the whole array to one (bad) item
        i = path.index("[]")
        array, rest = ".".join(path[:i]), path[i + 1:]
        item = _item_value(rest, kind, bad)
        return ["--set-json", f"{array}={json.dumps([item])}"]
    dotted = ".".join(path)
    if kind.startswith("required:"):
        return ["--set-json", f"{dotted}.{bad}=null"]  # helm deletes a key set to null
    if kind == "additionalProperties":
        return ["--set-json", f"{dotted}.{bad}=1"]
    return ["--set-json", f"{dotted}={json.dumps(bad)}"]


def _item_value(rest: tuple, kind: str, bad):
    if kind.startswith("required:"):
        value: object = {"unrelated": "x"}
    elif kind == "additionalProperties":
        value = {bad: 1}
    else:
        value = bad
    for key in reversed(rest):
        value = {key: value}
    return value


def _pointer(path: tuple) -> str:
    return "/" + "/".join("0" if p == "[]" else p for p in path)


def helm_template(*args):
    return helm("template", "seg", str(CHART), *args)


def test_the_defaults_pass_the_schema():
    proc = helm_template()
    assert proc.returncode == 0, proc.stderr


def test_the_walk_finds_the_schema_constraints():
    kinds = {kind.split(":")[0] for _, kind, _ in CASES}
    assert {"enum", "minimum", "maximum", "pattern", "required"} <= kinds, kinds
    assert len(CASES) >= 50, len(CASES)


@pytest.mark.parametrize(("path", "kind", "bad"), CASES, ids=[f"{'.'.join(p)}-{k}" for p, k, _ in CASES])
def test_each_constraint_rejects_a_bad_value(path, kind, bad):
    proc = helm_template(*_set_args(path, kind, bad))
    assert proc.returncode != 0, f"helm accepted {kind} violation at {'.'.join(path)} = {bad!r}"
    assert SCHEMA_ERROR in proc.stderr, proc.stderr
    pointer = _pointer(path)
    assert f"at '{pointer}'" in proc.stderr or f"at '{pointer}/" in proc.stderr, (pointer, proc.stderr)


# Constraints whose loss would let a typo deploy the wrong thing: pinned so that removing one fails this file.
CRITICAL = [
    (("mode",), "enum"),
    (("modelRepository",), "required:source"),
    (("modelRepository", "source"), "enum"),
    (("image", "tag"), "pattern"),
    (("image", "pullPolicy"), "enum"),
    (("gpu", "resourceName"), "pattern"),
    (("gpu", "count"), "minimum"),
    (("service", "type"), "enum"),
    (("service", "grpcPort"), "maximum"),
    (("replicaCount",), "minimum"),
    (("autoscaling", "minReplicas"), "minimum"),
    (("podSecurityContext", "runAsUser"), "minimum"),
]


@pytest.mark.parametrize(("path", "kind"), CRITICAL, ids=[f"{'.'.join(p)}-{k}" for p, k in CRITICAL])
def test_critical_constraints_are_in_the_schema(path, kind):
    assert any(p == path and k == kind for p, k, _ in CASES), f"{'.'.join(path)}: {kind} dropped from the schema"


def test_a_mistyped_mode_is_refused_not_rendered_as_cpu():
    proc = helm_template("--set", "mode=gpux")
    assert proc.returncode != 0 and "at '/mode'" in proc.stderr, proc.stderr
    for mode in ("gpu", "cpu"):
        assert helm_template("--set", f"mode={mode}").returncode == 0
