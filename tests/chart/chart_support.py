"""Rendering the chart with the real helm, shared by the chart tests.

Every render is parsed with a YAML loader that rejects duplicate mapping keys: PyYAML's safe_load keeps the last
value silently, while strict parsers (and `kubectl kustomize`, `kubectl apply --server-side`) refuse the manifest."""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from support import ROOT, TOOLS

HELM = TOOLS / "helm" / "helm"
KUBECTL = TOOLS / "helm" / "kubectl"
# SEGSERVE_CHART renders another copy of the chart (e.g. an older one, to see a new test fail on it).
CHART = Path(os.environ.get("SEGSERVE_CHART", ROOT / "charts" / "segserve"))
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = [None, *CI_VALUES]
IDS = ["defaults", *(p.stem for p in CI_VALUES)]
KUBE_VERSIONS = ["1.30.0", "1.35.0"]


class DuplicateKeyError(yaml.YAMLError):
    pass


class StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader (libyaml's parser when PyYAML has it) that raises on a mapping key given twice."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise DuplicateKeyError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
        seen.add(key)
    return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_all_strict(text: str) -> list[dict]:
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d]


def helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)


def values_args(values, sets=()) -> list[str]:
    args = ["-f", str(values)] if values else []
    for s in sets:
        args += ["--set", s]
    return args


_cache: dict = {}


def render_text(values=None, kube="1.35.0", sets=(), chart=None) -> str:
    key = (str(values), kube, tuple(sets), str(chart))
    if key not in _cache:
        proc = helm("template", "seg", str(chart or CHART), "--namespace", "inference", "--kube-version", kube,
                    *values_args(values, sets))
        assert proc.returncode == 0, proc.stderr
        _cache[key] = proc.stdout
    return _cache[key]


_parsed: dict = {}


def render(values=None, kube="1.35.0", sets=(), chart=None) -> list[dict]:
    """The rendered objects (a fresh copy each call: tests may change them)."""
    key = (str(values), kube, tuple(sets), str(chart))
    if key not in _parsed:
        _parsed[key] = load_all_strict(render_text(values, kube, sets, chart))
    return copy.deepcopy(_parsed[key])


def render_fails(sets) -> str:
    """helm's error output for values it must refuse (asserts that it refuses them)."""
    proc = helm("template", "seg", str(CHART), "--namespace", "inference", *values_args(None, sets))
    assert proc.returncode != 0, f"helm accepted {sets}"
    return proc.stderr


def values_of(values) -> dict:
    """values.yaml merged with a values file, as helm merges them (a fresh copy each call: tests may change it)."""
    return copy.deepcopy(_merged_values(str(values) if values else None))


@functools.cache
def _merged_values(values: str | None) -> dict:
    merged = yaml.safe_load((CHART / "values.yaml").read_text())
    if values:
        deep_merge(merged, yaml.safe_load(Path(values).read_text()))
    return merged


def deep_merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v


def kind(docs, name):
    return [d for d in docs if d["kind"] == name]


def deployment(docs):
    (dep,) = kind(docs, "Deployment")
    return dep


def pod_spec(docs):
    return deployment(docs)["spec"]["template"]["spec"]


def triton(docs):
    (c,) = [c for c in pod_spec(docs)["containers"] if c["name"] == "triton"]
    return c


def pods(docs):
    """Every pod spec rendered: the Deployment's template and the helm test pod."""
    return [pod_spec(docs), *(p["spec"] for p in kind(docs, "Pod"))]


def containers(pod):
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


GATEWAY_VALIDATOR = TOOLS / "gateway-api"


def validate_gateway_objects(docs: list[dict]) -> None:
    """Validate Gateway API objects with the npm package @kubernetes-models/gateway-api (JSON-schema validators
    generated from the Gateway API CRDs: types, patterns, enums, required, maxItems). It does not reject unknown
    fields, so the caller checks field names itself."""
    if not (GATEWAY_VALIDATOR / "node_modules").is_dir():
        pytest.fail("Gateway API models not fetched: run scripts/fetch-tools.sh gateway", pytrace=False)
    proc = subprocess.run(["node", str(Path(__file__).with_name("validate_gateway.mjs"))],
                          input=json.dumps(docs), capture_output=True, text=True, timeout=60,
                          env={"NODE_PATH": str(GATEWAY_VALIDATOR / "node_modules"), "PATH": "/usr/bin:/bin"},
                          cwd=GATEWAY_VALIDATOR)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _cache_kubernetes_schemas() -> None:
    """kubernetes-validate 1.37 re-reads and re-parses its multi-megabyte _definitions.json for every object it
    validates (utils.validate -> schema_contents); the files never change, so parse each once (13x faster)."""
    import kubernetes_validate.utils as kv

    if not hasattr(kv.schema_contents, "cache_info"):
        kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)


_cache_kubernetes_schemas()

if not HELM.is_file():
    pytest.fail("helm not fetched: run `make tools` (scripts/fetch-tools.sh helm)", pytrace=False)
