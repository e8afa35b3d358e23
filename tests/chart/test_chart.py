"""The Helm chart, rendered by the real helm v4 and validated offline against the Kubernetes schemas.

Every values file under charts/segserve/ci/ is linted, rendered for two Kubernetes versions and validated; then
the assertions a schema cannot make; then the values the chart must refuse, with their messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from chart_support import (CASES, CHART, CI_VALUES, IDS, KUBE_VERSIONS, ROOT, containers, deployment, helm,
                           kind, pod_spec, pods, render, render_fails, validate_gateway_objects, values_args, values_of)

pytestmark = pytest.mark.chart


# -- lint and schema validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_helm_lint_strict(values):
    proc = helm("lint", "--strict", str(CHART), *values_args(values))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_every_rendered_object_is_valid_for_kubernetes(values, kube):
    import kubernetes_validate

    docs = render(values, kube)
    assert docs
    for doc in docs:
        if doc["apiVersion"].startswith("gateway.networking.k8s.io/"):
            validate_gateway_objects([doc])
            continue
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

            # The model raises on a wrong type and silently drops unknown fields: a lossless round trip proves
            # there were none.
            dumped = ServiceMonitor.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
            assert dumped == doc, f"ServiceMonitor has fields its schema does not know: {doc}"
            continue
        try:
            kubernetes_validate.validate(doc, kube, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:  # an unknown kind is a failure, not a pass
            pytest.fail(f"no schema for {doc['apiVersion']}/{doc['kind']} in Kubernetes {kube}: {exc}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} invalid for Kubernetes {kube}: {exc.message}")


def test_every_feature_has_a_ci_values_file():
    names = {p.name for p in CI_VALUES}
    for feature in ("gpu", "cpu-only", "pvc", "s3", "gcs", "sync", "engine-build", "hpa", "servicemonitor",
                    "networkpolicy", "mig", "ha", "restricted-apis", "runtimeclass", "probes", "escape-hatches",
                    "ingress", "grpcroute", "engine-cache"):
        assert f"{feature}-values.yaml" in names


# -- what a schema cannot check -----------------------------------------------------------------------------
@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_selectors_match_the_pod_labels(values):
    docs = render(values)
    pod_labels = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    subset = lambda sel, labels: all(labels.get(k) == v for k, v in sel.items())
    assert subset(deployment(docs)["spec"]["selector"]["matchLabels"], pod_labels)
    for svc in kind(docs, "Service"):
        assert subset(svc["spec"]["selector"], pod_labels), svc["metadata"]["name"]
    for obj in kind(docs, "PodDisruptionBudget") + kind(docs, "NetworkPolicy"):
        sel = obj["spec"]["selector" if obj["kind"] == "PodDisruptionBudget" else "podSelector"]["matchLabels"]
        assert subset(sel, pod_labels)
    for sm in kind(docs, "ServiceMonitor"):
        targets = [s for s in kind(docs, "Service") if subset(sm["spec"]["selector"]["matchLabels"],
                                                              s["metadata"]["labels"])]
        assert [s["metadata"]["name"] for s in targets] == ["seg-segserve-metrics"]
        assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in targets[0]["spec"]["ports"]}


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_gpu_requests_equal_limits_and_cpu_mode_has_no_gpu(values):
    docs = render(values)
    v = values_of(values)
    pod = pod_spec(docs)
    for c in containers(pod):
        res = c.get("resources", {})
        gpu_keys = {k for k in (*res.get("requests", {}), *res.get("limits", {})) if k.startswith("nvidia.com/")}
        for key in gpu_keys:
            assert res["requests"][key] == res["limits"][key], (c["name"], key)
    triton = pod["containers"][0]["resources"]
    if v["mode"] == "gpu" and "/mig-" not in v["gpu"]["resourceName"]:
        assert not any(a.startswith("--allow-gpu-metrics") for a in pod["containers"][0]["args"])
    if v["mode"] == "gpu":
        assert triton["limits"][v["gpu"]["resourceName"]] == v["gpu"]["count"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    else:
        assert not any(k.startswith("nvidia.com/") for k in triton["limits"])
        assert "tolerations" not in pod and "--allow-gpu-metrics=false" in pod["containers"][0]["args"]
    if v["gpu"]["products"] and v["mode"] == "gpu":
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expr = term["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert expr["key"] == "nvidia.com/gpu.product" and expr["values"] == v["gpu"]["products"]


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_ports_are_named_unique_and_probes_hit_the_health_endpoints(values):
    docs = render(values)
    triton = pod_spec(docs)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    assert len(ports) == len(triton["ports"]) and ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    for svc in kind(docs, "Service"):
        names = [p["name"] for p in svc["spec"]["ports"]]
        assert len(set(names)) == len(names) and all(p["targetPort"] in ports for p in svc["spec"]["ports"])
    v = values_of(values)
    if v["probes"]["startup"]["enabled"]:
        assert triton["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
        startup = triton["startupProbe"]
        assert startup["failureThreshold"] * startup["periodSeconds"] >= 300, "too short for slow model loads"
    assert triton["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    if not v["probes"]["liveness"]["handler"]:
        assert triton["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    args = triton["args"]
    assert f"--model-control-mode={v['triton']['modelControlMode']}" in args
    strict = v["triton"]["strictReadiness"]
    expected = (v["triton"]["modelControlMode"] == "none") if strict == "auto" else strict
    assert f"--strict-readiness={str(expected).lower()}" in args
    grace = pod_spec(docs)["terminationGracePeriodSeconds"]
    assert grace > v["triton"]["exitTimeoutSeconds"] + v["preStopSleepSeconds"]
    assert triton["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(v["preStopSleepSeconds"])]


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_shm_is_memory_backed_sized_from_values_and_counted_in_the_memory_limit(values):
    docs = render(values)
    v = values_of(values)
    pod = pod_spec(docs)
    (shm,) = [vol for vol in pod["volumes"] if vol["name"] == "dshm"]
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": f"{v['shm']['sizeMi']}Mi"}
    triton = pod["containers"][0]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in triton["volumeMounts"]
    total = f"{v['resources']['memoryMi'] + v['shm']['sizeMi']}Mi"
    assert triton["resources"]["limits"]["memory"] == triton["resources"]["requests"]["memory"] == total


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_pods_meet_the_restricted_pod_security_standard(values):
    allowed_volumes = {"emptyDir", "persistentVolumeClaim", "secret", "configMap", "projected", "downwardAPI",
                       "ephemeral", "csi"}
    user = {c["name"] for key in ("extraInitContainers", "sidecars") for c in values_of(values)[key]}
    for pod in pods(render(values)):
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert sc["runAsUser"] != 0 and pod["automountServiceAccountToken"] is False
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        for vol in pod.get("volumes", []):
            assert set(vol) - {"name"} <= allowed_volumes, vol
        for c in containers(pod):
            if c["name"] in user:  # containers the user added through the escape hatches are theirs to secure
                continue
            csc = c["securityContext"]
            assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"]["drop"] == ["ALL"]
            assert csc["runAsNonRoot"] is True and csc["readOnlyRootFilesystem"] is True
            assert not csc.get("privileged") and "add" not in csc["capabilities"]
            assert not any(p.get("hostPort") for p in c.get("ports", []))


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_no_secret_values_in_rendered_manifests(values):
    docs = render(values)
    # The one Secret the chart creates holds a random admin key it generated, never a value from values.yaml.
    assert [s["metadata"]["name"] for s in kind(docs, "Secret")] in ([], ["seg-segserve-admin-key"])
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"(?i)(aws_secret_access_key|password|private_key)\s*:\s*\S", text)
    env = pod_spec(docs)["containers"][0].get("env", [])
    for item in env:
        if item["name"] in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "value" not in item and item["valueFrom"]["secretKeyRef"]["name"]


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_hpa_and_replicas_are_mutually_exclusive_and_pdb_needs_two_replicas(values):
    docs = render(values)
    v = values_of(values)
    hpa = kind(docs, "HorizontalPodAutoscaler")
    assert bool(hpa) == v["autoscaling"]["enabled"]
    assert ("replicas" in deployment(docs)["spec"]) != bool(hpa)
    replicas = v["autoscaling"]["minReplicas"] if hpa else v["replicaCount"]
    assert bool(kind(docs, "PodDisruptionBudget")) == (replicas >= 2)
    if hpa:
        metric = hpa[0]["spec"]["metrics"][0]["pods"]
        assert metric["metric"]["name"] == v["autoscaling"]["metricName"]
        assert metric["target"]["averageValue"] == str(v["autoscaling"]["targetQueueMicroseconds"])


def test_repository_sources_mount_or_point_where_they_should():
    def triton(values):
        return pod_spec(render(CHART / "ci" / values if values else None))
    pvc = triton("pvc-values.yaml")
    assert "--model-repository=/models" in pvc["containers"][0]["args"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True, "subPath": "repositories/v3"} in \
        pvc["containers"][0]["volumeMounts"]
    (models,) = [v for v in pvc["volumes"] if v["name"] == "models"]
    assert models["persistentVolumeClaim"] == {"claimName": "segmentation-models", "readOnly": True}
    s3 = triton("s3-values.yaml")
    assert "--model-repository=s3://segserve-models/model_repository" in s3["containers"][0]["args"]
    assert "--repository-poll-secs=60" in s3["containers"][0]["args"]
    assert not any(v["name"] == "models" for v in s3["volumes"])
    sync = triton("sync-values.yaml")
    assert sync["initContainers"][0]["command"][:3] == ["aws", "s3", "sync"]
    default_docs = render()
    (claim,) = kind(default_docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "seg-segserve-models"


def test_observability_objects():
    docs = render(CHART / "ci" / "servicemonitor-values.yaml")
    (sm,) = kind(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack" and sm["spec"]["endpoints"][0]["interval"] == "10s"
    (dash,) = [c for c in kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    board = json.loads(dash["data"]["segserve-triton.json"])
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for metric in ("nv_inference_count", "nv_inference_request_summary_us", "nv_inference_queue_duration_us",
                   "nv_inference_compute_infer_duration_us", "DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_DEV_FB_USED"):
        assert metric in exprs
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_network_policy_admits_only_the_listed_peers():
    docs = render(CHART / "ci" / "networkpolicy-values.yaml")
    (policy,) = kind(docs, "NetworkPolicy")
    api, metrics = policy["spec"]["ingress"]
    assert {p["port"] for p in api["ports"]} == {"http", "grpc"}
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "inference-clients"}}} in api["from"]
    assert metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_helm_test_hook_runs_one_inference_per_model():
    docs = render()
    (pod,) = kind(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/tritonserver:26.07-py3-sdk"
    (script,) = [c for c in kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-test-script")]
    code = script["data"]["test_inference.py"]
    compile(code, "test_inference.py", "exec")
    assert "client.infer(name, inputs, headers=admin)" in code and "is_server_ready" in code


def test_helm_install_dry_run_client():
    proc = helm("install", "seg", str(CHART), "--dry-run=client", "--namespace", "inference")
    assert proc.returncode == 0, proc.stderr
    assert "STATUS: pending-install" in proc.stdout and "kubectl -n inference port-forward" in proc.stdout


# -- values the chart must refuse ------------------------------------------------------------------------------
# Schema errors name the value; the lower rows are Kubernetes' and Triton's own rules the schema encodes (issue #11).
@pytest.mark.parametrize(("sets", "message"), [
    (["replicaCount=-1"], r"(?si)replicaCount.*minimum"),
    (["gpu.count=-1"], r"(?si)gpu.count.*minimum"),
    (["modelRepository.source=ftp"], r"(?si)modelRepository.source.*(enum|one of)"),
    (["image.tag=bad:tag"], r"(?si)image.tag.*(pattern|does not match)"),
    (["service.httpPort=notaport"], r"(?si)service.httpPort.*(integer|type)"),
    (["shm.sizeMi=8"], r"(?si)shm.sizeMi.*minimum"),
    (["gpu.resourceName=amd.com/gpu"], r"(?si)gpu.resourceName.*(pattern|does not match)"),
    (["replicas=3"], r"(?si)(additional properties|additionalProperties).*replicas"),
    (["pdb.maxUnavailable=banana"], r"maxUnavailable"),
    (["pdb.maxUnavailable=-3"], r"maxUnavailable"),
    (["resources.cpuRequest="], r"cpuRequest"),
    (["metrics.port=8000"], r"metrics.port"),
    (["metrics.port=8001"], r"metrics.port"),
    (["nameOverride=Seg_Serve"], r"nameOverride"),
    (["fullnameOverride=-bad-"], r"fullnameOverride"),
    (["image.digest=md5:abc"], r"image.digest"),
    (["podSecurityContext.fsGroupChangePolicy=Sometimes"], r"fsGroupChangePolicy"),
    (["triton.restrictedApis={everything}"], r"restrictedApis"),
    (["ingress.maxBodySize=lots"], r"maxBodySize"),
])
def test_schema_rejects_bad_values_with_a_clear_message(sets, message):
    stderr = render_fails(sets)
    assert re.search(message, stderr), stderr


@pytest.mark.parametrize(("sets", "message"), [
    (["modelRepository.source=s3"], "modelRepository.source=s3 needs modelRepository.s3.url set to s3://"),
    (["modelRepository.source=gcs"], "modelRepository.source=gcs needs modelRepository.gcs.url"),
    (["modelRepository.source=sync"], "modelRepository.source=sync needs modelRepository.sync.command"),
    (["gpu.count=0"], "mode=gpu needs gpu.count >= 1 (use mode=cpu"),
    (["engineBuild.enabled=true", "engineBuild.image=b.example.com/builder:26.07", "mode=cpu", "gpu.count=0"],
     "engineBuild.enabled needs mode=gpu"),
    (["engineBuild.enabled=true"], "engineBuild.enabled needs engineBuild.image"),
    (["engineBuild.enabled=true", "engineBuild.image=b.example.com/builder:24.05-py3"],
     "engineBuild.image tag (NGC 24.05) must match the Triton release (NGC 26.07)"),
    (["autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=2"],
     "autoscaling.minReplicas (5) must not exceed autoscaling.maxReplicas (2)"),
    (["networkPolicy.enabled=true"], "networkPolicy.enabled needs networkPolicy.allowedNamespaces"),
    (["updateStrategy.rollingUpdate.maxUnavailable=0"], "maxSurge and maxUnavailable cannot both be 0"),
    (["triton.restrictedApis={health}"], "triton.restrictedApis must not contain health"),
    (["service.grpcPort=8000"], "service.httpPort and service.grpcPort are both 8000"),
    (["ingress.enabled=true", "ingress.tlsSecret=t"], "ingress.enabled needs ingress.host"),
    (["ingress.enabled=true", "ingress.host=seg.example.com"], "ingress.enabled needs ingress.tlsSecret"),
    (["grpcRoute.enabled=true"], "grpcRoute.enabled needs grpcRoute.parentRefs"),
    (["ingress.enabled=true", "ingress.host=seg.example.com", "ingress.tlsSecret=t", "networkPolicy.enabled=true",
      "networkPolicy.allowedPodLabels.app=gateway"], "ingress controller's (or Gateway's) namespace"),
])
def test_validate_values_fails_with_an_actionable_message(sets, message):
    stderr = render_fails(sets)
    assert message in stderr, stderr


def test_version_mismatch_can_be_allowed_explicitly():
    render(sets=["engineBuild.enabled=true", "engineBuild.image=b.example.com/builder:24.05-py3",
                 "engineBuild.allowVersionMismatch=true"])


# -- documentation --------------------------------------------------------------------------------------------
def leaf_keys(node, prefix=""):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaf_keys(v, f"{prefix}{k}.")
    else:
        yield prefix.rstrip(".")


def test_every_value_is_documented_and_the_readme_is_current():
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"## @param (\S+)", text))
    # A documented key covers its subtree (free-form objects such as updateStrategy).
    missing = [k for k in leaf_keys(yaml.safe_load(text))
               if not any(k == d or k.startswith(f"{d}.") for d in documented)]
    assert not missing, f"values without a ## @param line: {missing}"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "chart_readme.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    readme = (CHART / "README.md").read_text()
    for example in ("mode=cpu", "existingClaim", "source=s3", "gpu.products"):
        assert example in readme
