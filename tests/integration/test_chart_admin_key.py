"""The chart's restricted-API flags and its `helm test` script, run against the real tritonserver.

The Deployment's `--grpc-restricted-protocol` / `--http-restricted-api` arguments are rendered by the real helm, the
`$(SEGSERVE_ADMIN_KEY)` reference is expanded the way the kubelet expands it, and the local tritonserver 2.51 starts
with exactly those arguments: a wrong flag syntax would stop it. Then the chart's own `helm test` script must pass
with the key (it sends `triton-grpc-protocol-<header>` on gRPC) and fail without it, and HTTP must refuse the
repository index without the `segserve-admin-key` header."""

from __future__ import annotations

import secrets
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from support import ROOT, TOOLS, running_triton

pytestmark = pytest.mark.integration

HELM = TOOLS / "helm" / "helm"
CHART = ROOT / "charts" / "segserve"

ECHO_CONFIG = """name: "echo"
backend: "python"
max_batch_size: 4
input [{ name: "IMAGE", data_type: TYPE_UINT8, dims: [ 4 ] }]
output [{ name: "MASK", data_type: TYPE_UINT8, dims: [ 4 ] }]
instance_group [{ kind: KIND_CPU, count: 1 }]
"""
ECHO_MODEL = """import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("MASK", pb_utils.get_input_tensor_by_name(r, "IMAGE")
                                                            .as_numpy())]) for r in requests]
"""


def rendered(show_only: str) -> list[dict]:
    if not HELM.is_file():
        pytest.skip("helm not fetched")
    proc = subprocess.run([str(HELM), "template", "seg", str(CHART), "--show-only", show_only],
                          capture_output=True, text=True, check=True, timeout=60)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def test_the_charts_restricted_api_flags_and_helm_test_script_on_a_real_triton(tmp_path):
    (deployment,) = rendered("templates/deployment.yaml")
    triton = deployment["spec"]["template"]["spec"]["containers"][0]
    key = secrets.token_urlsafe(32)
    flags = tuple(a.replace("$(SEGSERVE_ADMIN_KEY)", key) for a in triton["args"]
                  if a.startswith(("--grpc-restricted-protocol=", "--http-restricted-api=")))
    assert len(flags) == 2
    flags += tuple(a for a in triton["args"] if a in ("--disable-auto-complete-config", "--allow-http=true"))
    (script_map,) = [d for d in rendered("templates/tests/test-inference.yaml") if d["kind"] == "ConfigMap"]
    script = tmp_path / "test_inference.py"
    script.write_text(script_map["data"]["test_inference.py"])

    repo = tmp_path / "repo"
    (repo / "echo" / "1").mkdir(parents=True)
    (repo / "echo" / "config.pbtxt").write_text(ECHO_CONFIG)
    (repo / "echo" / "1" / "model.py").write_text(ECHO_MODEL)
    # The chart's own restriction flags only.
    with running_triton(repo, tmp_path / "triton.log", 120, extra_args=flags, restricted_apis=()) as server:
        base = {"TRITON_GRPC_URL": server.grpc_url, "MODELS": "", "PATH": "/usr/bin:/bin"}
        (pod,) = [d for d in rendered("templates/tests/test-inference.yaml") if d["kind"] == "Pod"]
        header = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}["SEGSERVE_ADMIN_HEADER"]["value"]
        ok = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                            env={**base, "SEGSERVE_ADMIN_HEADER": header, "SEGSERVE_ADMIN_KEY": key})
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip().splitlines()[-1] == f"ok: 1 model(s) answered at {server.grpc_url}"
        refused = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                                 env={**base, "SEGSERVE_ADMIN_HEADER": header, "SEGSERVE_ADMIN_KEY": "wrong"})
        assert refused.returncode != 0
        assert f"This protocol is restricted, expecting header '{header}'" in refused.stderr, refused.stderr

        index = f"http://{server.http_url}/v2/repository/index"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(urllib.request.Request(index, data=b"{}"), timeout=10)
        request = urllib.request.Request(index, data=b"{}", headers={"segserve-admin-key": key})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
