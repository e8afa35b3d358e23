"""The chart on real clusters (issue #11, and the chart parts of #7 and #13): safe upgrades, secure defaults,
escape hatches, gRPC ingress. Each test names the upstream rule it encodes."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess

import pytest
import yaml

from chart_support import (CASES, CHART, IDS, KUBECTL, ROOT, containers, deployment, env_of, helm, kind,
                           load_all_strict, pod_spec, pods, render, render_fails, render_text, triton,
                           validate_gateway_objects, values_of)

pytestmark = pytest.mark.chart
CI = CHART / "ci"
SELECTOR_KEYS = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}


def args_of(docs) -> list[str]:
    return triton(docs)["args"]


# -- 1. image, release pairing and Triton's hardening flags ---------------------------------------------------
def test_default_image_is_the_release_tables_default():
    table = json.loads((CHART / "releases.json").read_text())
    (row,) = [r for r in table["releases"] if r["ngc"] == table["default"]]
    assert triton(render())["image"] == row["triton_image"]
    assert (CHART / "releases.json").read_bytes() == (ROOT / "export" / "data" / "releases.json").read_bytes()


def test_image_by_digest_and_a_mirror_tag_with_an_explicit_release():
    digest = "sha256:" + "ab" * 32
    docs = render(sets=[f"image.digest={digest}", "image.tag=mirror-build-7", "image.release=26.07"])
    assert triton(docs)["image"] == f"nvcr.io/nvidia/tritonserver@{digest}"


ADMIN_FLAG = "shared-memory,model-repository:segserve-admin-key=$(SEGSERVE_ADMIN_KEY)"


def test_triton_runs_hardened_by_default():
    """Triton docs/customization_guide/inference_protocols.md ("Limit Endpoint Access"): --grpc-restricted-protocol /
    --http-restricted-api=<apis>:<key>=<value>; gRPC clients send `triton-grpc-protocol-<key>`, HTTP clients `<key>`."""
    docs = render()
    c = triton(docs)
    assert c["command"] == ["tritonserver"]  # no shell: the key reaches argv through Kubernetes' $(VAR) expansion
    args = c["args"]
    assert f"--grpc-restricted-protocol={ADMIN_FLAG}" in args and f"--http-restricted-api={ADMIN_FLAG}" in args
    assert "--disable-auto-complete-config" in args and "--allow-http=true" in args
    assert "--model-control-mode=none" in args
    env = env_of(c)["SEGSERVE_ADMIN_KEY"]
    assert env == {"name": "SEGSERVE_ADMIN_KEY",
                   "valueFrom": {"secretKeyRef": {"name": "seg-segserve-admin-key", "key": "admin-key"}}}
    (secret,) = kind(docs, "Secret")
    key = base64.b64decode(secret["data"]["admin-key"]).decode()
    assert len(key) >= 32 and secret["metadata"]["name"] == "seg-segserve-admin-key"
    others = yaml.safe_dump_all([d for d in docs if d["kind"] != "Secret"])
    assert key not in others and secret["data"]["admin-key"] not in others


def test_admin_key_from_an_existing_secret_creates_none():
    docs = render(CI / "restricted-apis-values.yaml")
    assert not kind(docs, "Secret")
    ref = env_of(triton(docs))["SEGSERVE_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "triton-admin", "key": "token"}
    args = args_of(docs)
    flag = "shared-memory,model-repository,model-config,statistics,trace,logging:segserve-admin-key=$(SEGSERVE_ADMIN_KEY)"
    assert f"--grpc-restricted-protocol={flag}" in args


def test_restricting_nothing_renders_no_flag_and_no_secret():
    docs = render(sets=["triton.restrictedApis=null"])
    assert not kind(docs, "Secret") and not any("restricted" in a for a in args_of(docs))
    assert "SEGSERVE_ADMIN_KEY" not in env_of(triton(docs))


def test_helm_test_pod_sends_the_admin_key_on_restricted_calls():
    docs = render()
    (pod,) = kind(docs, "Pod")
    env = env_of(pod["spec"]["containers"][0])
    assert env["SEGSERVE_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "seg-segserve-admin-key"
    assert env["SEGSERVE_ADMIN_HEADER"]["value"] == "triton-grpc-protocol-segserve-admin-key"
    (script,) = [c for c in kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-test-script")]
    assert "get_model_repository_index(as_json=True, headers=admin)" in script["data"]["test_inference.py"]


# -- 2. a subchart of an umbrella chart ------------------------------------------------------------------------
def test_renders_as_a_subchart_with_global_values(tmp_path):
    """Helm passes the parent's `global` values into every subchart (helm docs, "Subcharts and Global Values";
    helm/helm#10392): a root `additionalProperties: false` must still admit `global`."""
    parent = tmp_path / "umbrella"
    (parent / "charts").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "segserve")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: umbrella\nversion: 1.0.0\ndependencies:\n  - name: segserve\n    version: '*'\n")
    (parent / "values.yaml").write_text(
        "global:\n  imageRegistry: mirror.example.com\nsegserve:\n  replicaCount: 1\n")
    proc = helm("template", "u", str(parent), "--namespace", "inference", "--kube-version", "1.35.0")
    assert proc.returncode == 0, proc.stderr
    assert kind(load_all_strict(proc.stdout), "Deployment")


# -- 3. upgrades that do not stall ------------------------------------------------------------------------------
@pytest.mark.parametrize("sets", [["replicaCount=2"], ["autoscaling.enabled=true"],
                                  ["engineBuild.enabled=true", "engineBuild.image=b.example.com/builder:26.07",
                                   "modelRepository.pvc.existingClaim=models", "replicaCount=3"]])
def test_chart_created_read_write_once_claims_refuse_several_replicas(sets):
    """A ReadWriteOnce volume attaches to one node (Kubernetes docs, "Persistent Volumes: Access Modes"): replicas
    spread across nodes hang in ContainerCreating with Multi-Attach errors."""
    err = render_fails(sets)
    assert "ReadWriteOnce" in err and ("ReadOnlyMany" in err or "ReadWriteMany" in err) and "existingClaim" in err


def test_several_replicas_are_fine_on_a_shared_or_existing_claim():
    render(sets=["replicaCount=3", "modelRepository.pvc.accessModes={ReadOnlyMany}"])
    render(sets=["replicaCount=3", "modelRepository.pvc.existingClaim=models"])
    render(CI / "ha-values.yaml")


def test_rolling_update_needs_no_spare_gpu_and_the_deadline_covers_slow_starts():
    """Deployment strategy (Kubernetes docs, "Deployments: Rolling Update Deployment"): maxSurge 1 (the default)
    schedules a new pod before an old one stops, which needs a free GPU; progressDeadlineSeconds defaults to 600."""
    spec = deployment(render())["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert spec["progressDeadlineSeconds"] >= 1800
    spec = deployment(render(sets=["updateStrategy.type=Recreate", "updateStrategy.rollingUpdate=null",
                                   "progressDeadlineSeconds=3600"]))["spec"]
    assert spec["strategy"] == {"type": "Recreate"} and spec["progressDeadlineSeconds"] == 3600


def test_a_chart_version_bump_does_not_roll_the_pods(tmp_path):
    """A changed pod template restarts every pod; the chart and app version labels stay on the Deployment."""
    bumped = tmp_path / "segserve"
    shutil.copytree(CHART, bumped)
    meta = yaml.safe_load((bumped / "Chart.yaml").read_text())
    meta["version"], meta["appVersion"] = "9.9.9", "9.9.9"
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(meta))
    old, new = deployment(render()), deployment(render(chart=bumped))
    assert old["metadata"]["labels"] != new["metadata"]["labels"]
    assert old["spec"]["template"] == new["spec"]["template"]
    labels = old["spec"]["template"]["metadata"]["labels"]
    assert "helm.sh/chart" not in labels and "app.kubernetes.io/version" not in labels


# -- 4. scratch space and ephemeral storage ---------------------------------------------------------------------
def quantity_mi(q: str) -> int:
    return int(q.removesuffix("Mi")) if q.endswith("Mi") else int(q.removesuffix("Gi")) * 1024


@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_every_container_requests_ephemeral_storage_and_scratch_is_sized(values):
    """Kubernetes docs ("Local ephemeral storage"): emptyDir usage counts against the pod; without a request the
    scheduler ignores it and the kubelet evicts the pod under disk pressure."""
    docs = render(values)
    v = values_of(values)
    pod = pod_spec(docs)
    for c in containers(pod):
        if c["name"] in {"triton", "sync-repository", "build-engines"}:  # the chart's own, not sidecars from values
            assert "ephemeral-storage" in c["resources"]["requests"], c["name"]
    vols = {vol["name"]: vol for vol in pod["volumes"]}
    assert vols["tmp"]["emptyDir"] == {"sizeLimit": f"{v['scratch']['sizeMi']}Mi"}
    expected = v["resources"]["ephemeralStorageMi"] + v["scratch"]["sizeMi"]
    if v["modelRepository"]["source"] in ("s3", "gcs"):
        expected += v["modelRepository"]["cloudCacheSizeMi"]
    assert quantity_mi(triton(docs)["resources"]["requests"]["ephemeral-storage"]) == expected


@pytest.mark.parametrize(("values", "variable"), [("s3-values.yaml", "TRITON_AWS_MOUNT_DIRECTORY"),
                                                  ("gcs-values.yaml", "TRITON_GCS_MOUNT_DIRECTORY")])
def test_cloud_repositories_download_into_a_sized_volume(values, variable):
    """Triton docs/user_guide/model_repository.md ("Cloud Storage"): the remote repository is copied into a temporary
    folder unless TRITON_AWS_MOUNT_DIRECTORY / TRITON_GCS_MOUNT_DIRECTORY names an existing empty one."""
    docs = render(CI / values)
    path = env_of(triton(docs))[variable]["value"]
    assert {"name": "cloud-repository", "mountPath": path} in triton(docs)["volumeMounts"]
    (vol,) = [v for v in pod_spec(docs)["volumes"] if v["name"] == "cloud-repository"]
    assert vol["emptyDir"]["sizeLimit"] == f"{values_of(CI / values)['modelRepository']['cloudCacheSizeMi']}Mi"


# -- 5. strict YAML, kustomize, the helm test pod ----------------------------------------------------------------
@pytest.mark.parametrize("values", CASES, ids=IDS)
def test_every_render_has_no_duplicate_keys_and_passes_kubectl_kustomize(values, tmp_path):
    docs = render(values)  # parsed by load_all_strict: raises DuplicateKeyError
    (tmp_path / "rendered.yaml").write_text(render_text(values))
    (tmp_path / "kustomization.yaml").write_text("resources: [rendered.yaml]\n")
    proc = subprocess.run([str(KUBECTL), "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(load_all_strict(proc.stdout)) == len(docs)


def test_helm_test_pod_is_not_selected_by_the_services_and_pulls_with_the_secrets():
    docs = render(sets=["image.pullSecrets={ngc-key}"])
    (pod,) = kind(docs, "Pod")
    labels = pod["metadata"]["labels"]
    selectors = [s["spec"]["selector"] for s in kind(docs, "Service")]
    selectors.append(deployment(docs)["spec"]["selector"]["matchLabels"])
    for sel in selectors:
        assert not all(labels.get(k) == v for k, v in sel.items()), sel
    assert labels["app.kubernetes.io/component"] == "test"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "ngc-key"}]


# -- 6. readiness per model-control mode ------------------------------------------------------------------------
@pytest.mark.parametrize(("sets", "strict"), [
    ([], "true"), (["triton.modelControlMode=poll"], "false"), (["triton.modelControlMode=explicit"], "false"),
    (["triton.modelControlMode=poll", "triton.strictReadiness=true"], "true"),
    (["triton.strictReadiness=false"], "false")])
def test_strict_readiness_follows_the_model_control_mode(sets, strict):
    assert f"--strict-readiness={strict}" in args_of(render(sets=sets))


# -- 7. MIG ------------------------------------------------------------------------------------------------------
def test_mig_turns_tritons_gpu_metrics_off():
    """Triton release notes (known issue) and triton-inference-server/server#5324: Triton cannot read GPU metrics on
    MIG devices."""
    assert "--allow-gpu-metrics=false" in args_of(render(CI / "mig-values.yaml"))
    assert not any(a.startswith("--allow-gpu-metrics") for a in args_of(render()))


def test_dashboard_gpu_panels_read_dcgm_exporter_by_pod():
    docs = render(CI / "servicemonitor-values.yaml")
    (dash,) = [c for c in kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    board = json.loads(dash["data"]["segserve-triton.json"])
    gpu = [t["expr"] for p in board["panels"] if "GPU" in p["title"] for t in p["targets"]]
    assert gpu and all("DCGM_FI_" in e and 'pod=~"$pod"' in e for e in gpu)
    assert not any("nv_gpu_" in t["expr"] for p in board["panels"] for t in p["targets"])


# -- 8. CPU mode on a GPU node, runtimeClassName -----------------------------------------------------------------
def test_cpu_mode_hides_every_gpu():
    """NVIDIA Container Toolkit user guide ("GPU Enumeration"): NVIDIA_VISIBLE_DEVICES=void exposes no GPU; NGC
    images set it to all, so without it a CPU pod on a GPU node sees every GPU."""
    for pod in pods(render(CI / "cpu-only-values.yaml"))[:1]:
        for c in containers(pod):
            assert env_of(c)["NVIDIA_VISIBLE_DEVICES"] == {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(triton(render()))


def test_runtime_class_name():
    assert pod_spec(render(CI / "runtimeclass-values.yaml"))["runtimeClassName"] == "nvidia"
    assert "runtimeClassName" not in pod_spec(render())


# -- 9. NetworkPolicy vs scraping --------------------------------------------------------------------------------
@pytest.mark.parametrize("feature", ["metrics.serviceMonitor.enabled=true", "autoscaling.enabled=true"])
def test_network_policy_must_admit_the_scrapers(feature):
    sets = ["networkPolicy.enabled=true", "networkPolicy.allowedNamespaces={clients}", feature,
            "modelRepository.pvc.existingClaim=models"]
    assert "networkPolicy.metricsNamespaces" in render_fails(sets)
    render(sets=[*sets, "networkPolicy.metricsNamespaces={monitoring}"])


# -- 10. schema holes (the values refused are in test_chart.py's refusal tables) ----------------------------------
@pytest.mark.parametrize("sets", [
    ["image.tag=26.07-vllm-python-py3"], ["image.tag=mirror-2607"], ["image.tag=26.07-py3-igpu"],
    ["gpu.resourceName=nvidia.com/gpu.shared"], ["gpu.resourceName=nvidia.com/mig-3g.40gb"],
    ["pdb.maxUnavailable=25%"], ["pdb.maxUnavailable=0"], ["resources.cpuRequest=500m"],
    ["gpu.productLabel=cloud.google.com/gke-accelerator", "gpu.products={nvidia-l4}"]])
def test_schema_accepts_legitimate_values(sets):
    render(sets=sets)


def test_probe_settings_come_from_values():
    """Kubernetes probes default to timeoutSeconds 1 (docs, "Configure Liveness, Readiness and Startup Probes"):
    a busy Triton misses it and the kubelet restarts a healthy server."""
    c = triton(render(CI / "probes-values.yaml"))
    v = values_of(CI / "probes-values.yaml")["probes"]
    assert c["readinessProbe"]["timeoutSeconds"] == v["readiness"]["timeoutSeconds"]
    assert c["readinessProbe"]["successThreshold"] == v["readiness"]["successThreshold"]
    assert c["livenessProbe"]["exec"]["command"] == v["liveness"]["handler"]["exec"]["command"]
    assert "httpGet" not in c["livenessProbe"] and "startupProbe" not in c
    assert c["livenessProbe"]["timeoutSeconds"] == v["liveness"]["timeoutSeconds"]
    d = triton(render())
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert d[probe]["timeoutSeconds"] >= 5


def test_grpc_only_server_probes_over_grpc():
    c = triton(render(sets=["triton.allowHttp=false"]))
    assert "--allow-http=false" in c["args"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 8001} and "httpGet" not in c[probe]


def test_pod_security_context_skips_the_recursive_chown():
    assert pod_spec(render())["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_gpu_product_affinity_on_gke_label():
    pod = pod_spec(render(sets=["gpu.productLabel=cloud.google.com/gke-accelerator", "gpu.products={nvidia-l4}"]))
    expr = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert expr["matchExpressions"] == [{"key": "cloud.google.com/gke-accelerator", "operator": "In",
                                         "values": ["nvidia-l4"]}]


# -- escape hatches -----------------------------------------------------------------------------------------------
def test_escape_hatches_land_where_they_should():
    docs = render(CI / "escape-hatches-values.yaml")
    v = values_of(CI / "escape-hatches-values.yaml")
    pod, c = pod_spec(docs), triton(docs)
    assert [x["name"] for x in pod["initContainers"]][-1] == v["extraInitContainers"][0]["name"]
    assert [x["name"] for x in pod["containers"]] == ["triton", v["sidecars"][0]["name"]]
    for vol in v["extraVolumes"]:
        assert vol in pod["volumes"]
    for mount in v["extraVolumeMounts"]:
        assert mount in c["volumeMounts"]
    assert env_of(c)["LD_PRELOAD"]["value"] == "/plugins/libcustom_plugin.so"
    assert c["envFrom"] == v["triton"]["envFrom"]
    assert c["resources"]["limits"]["cpu"] == "12" and c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["securityContext"]["readOnlyRootFilesystem"] is True and c["securityContext"]["runAsUser"] == 2000
    assert pod["priorityClassName"] == "inference-critical"
    meta = deployment(docs)["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "vision" and meta["annotations"]["example.com/owner"] == "vision"
    (svc,) = [s for s in kind(docs, "Service") if s["metadata"]["name"] == "seg-segserve"]
    assert svc["metadata"]["labels"]["exposure"] == "internal"
    assert "--grpc-use-ssl=true" in c["args"]


def test_user_node_affinity_replaces_the_product_affinity_without_duplicate_keys():
    docs = render(CI / "escape-hatches-values.yaml", sets=["gpu.products={NVIDIA-L4}"])
    aff = pod_spec(docs)["affinity"]
    v = values_of(CI / "escape-hatches-values.yaml")
    assert aff["nodeAffinity"] == v["affinity"]["nodeAffinity"] and aff["podAntiAffinity"]


# -- gRPC ingress -------------------------------------------------------------------------------------------------
def test_ingress_carries_grpc_to_triton_with_tls_and_a_body_limit():
    """ingress-nginx docs/user-guide/nginx-configuration/annotations.md: backend-protocol GRPC makes nginx grpc_pass
    (h2c) to the backend; proxy-body-size sets client_max_body_size. ingress-nginx serves HTTP/2 (so gRPC) on TLS."""
    docs = render(CI / "ingress-values.yaml")
    v = values_of(CI / "ingress-values.yaml")["ingress"]
    (ing,) = kind(docs, "Ingress")
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"
    assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == v["maxBodySize"]
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"hosts": [v["host"]], "secretName": v["tlsSecret"]}]
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == v["host"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "seg-segserve", "port": {"name": "grpc"}}


GRPCROUTE_FIELDS = {"spec": {"parentRefs", "hostnames", "rules"},
                    "rule": {"name", "matches", "filters", "backendRefs", "sessionPersistence"},
                    "backendRef": {"group", "kind", "name", "namespace", "port", "weight", "filters"}}


def test_grpc_route_is_valid_and_points_at_the_grpc_port():
    """Gateway API GRPCRoute v1 (gateway-api.sigs.k8s.io/api-types/grpcroute): TLS lives on the Gateway's listener."""
    docs = render(CI / "grpcroute-values.yaml")
    (route,) = kind(docs, "GRPCRoute")
    v = values_of(CI / "grpcroute-values.yaml")["grpcRoute"]
    validate_gateway_objects([route])
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert set(route["spec"]) <= GRPCROUTE_FIELDS["spec"]
    assert route["spec"]["parentRefs"] == v["parentRefs"] and route["spec"]["hostnames"] == v["hostnames"]
    (rule,) = route["spec"]["rules"]
    assert set(rule) <= GRPCROUTE_FIELDS["rule"]
    (ref,) = rule["backendRefs"]
    assert set(ref) <= GRPCROUTE_FIELDS["backendRef"] and ref == {"name": "seg-segserve", "port": 8001}


def test_the_gateway_validator_rejects_a_broken_route():
    route = kind(render(CI / "grpcroute-values.yaml"), "GRPCRoute")[0]
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = "grpc"
    with pytest.raises(AssertionError, match="port"):
        validate_gateway_objects([route])


# -- autoscaling metrics -------------------------------------------------------------------------------------------
def test_autoscaling_takes_a_free_form_metrics_list():
    docs = render(CI / "hpa-values.yaml")
    (hpa,) = kind(docs, "HorizontalPodAutoscaler")
    v = values_of(CI / "hpa-values.yaml")["autoscaling"]
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == v["metricName"]
    assert hpa["spec"]["metrics"][1:] == v["metrics"]
    only = kind(render(CI / "hpa-values.yaml", sets=["autoscaling.metricName="]), "HorizontalPodAutoscaler")[0]
    assert only["spec"]["metrics"] == v["metrics"]
    assert "autoscaling.metrics" in render_fails(["autoscaling.enabled=true", "autoscaling.metricName=",
                                                  "modelRepository.pvc.existingClaim=m"])


# -- #7: the engine-build init container ---------------------------------------------------------------------------
def test_engine_build_is_refused_without_a_builder_image():
    err = render_fails(["engineBuild.enabled=true"])
    assert "engineBuild.enabled needs engineBuild.image" in err and "nvcr.io/nvidia/tensorrt:26.07-py3" in err


def test_engine_build_writes_a_served_tensorrt_repository():
    """Contract 2: python -m export build-engine --source-repository SRC --repository DST --cache-dir CACHE
    --release YY.MM writes a complete tensorrt_plan repository into DST, which Triton serves."""
    docs = render(CI / "engine-build-values.yaml")
    pod = pod_spec(docs)
    (build,) = [c for c in pod["initContainers"] if c["name"] == "build-engines"]
    v = values_of(CI / "engine-build-values.yaml")
    assert build["image"] == v["engineBuild"]["image"]
    assert build["command"] == ["python", "-m", "export", "build-engine", "--source-repository", "/source",
                                "--repository", "/models", "--cache-dir", "/engine-cache", "--release", "26.07"]
    assert "--model-repository=/models" in args_of(docs)
    mounts = {m["mountPath"]: m for m in build["volumeMounts"]}
    assert mounts["/source"].get("readOnly") is True and not mounts["/models"].get("readOnly")
    assert mounts["/engine-cache"]["name"] == "engine-cache"
    assert build["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {m["mountPath"]: m for m in triton(docs)["volumeMounts"]}["/models"]["readOnly"] is True
    assert "copy-repository" not in [c["name"] for c in pod["initContainers"]]  # the PVC is the source itself
    # The argv parses with export's own build-engine parser (issue #7).
    from export.tensorrt.cli import build_engine_parser

    build_engine_parser().parse_args(build["command"][4:])


def test_engine_build_release_must_be_in_the_table():
    err = render_fails(["engineBuild.enabled=true", "engineBuild.image=b.example.com/builder:1",
                        "image.tag=mirror-1"])
    assert "image.release" in err


def test_engine_cache_is_mounted_writable_into_triton_at_the_configured_path():
    docs = render(sets=["engineCache.enabled=true", "engineCache.mountPath=/var/cache/trt"])
    mount = {m["mountPath"]: m for m in triton(docs)["volumeMounts"]}["/var/cache/trt"]
    assert mount["name"] == "engine-cache" and not mount.get("readOnly")
    (claim,) = [c for c in kind(docs, "PersistentVolumeClaim") if c["metadata"]["name"].endswith("-engine-cache")]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# -- documentation ----------------------------------------------------------------------------------------------------
def test_readme_documents_the_cluster_decisions():
    readme = (CHART / "README.md").read_text()
    for phrase in ("helm uninstall", "How the repository volume gets filled", "maxSurge", "triton-grpc-protocol-",
                   "inference-running liveness", "Declined", "cloud.google.com/gke-accelerator", "GRPCRoute",
                   "python -m client", "DCGM_FI_"):
        assert phrase in readme, phrase


def test_ingress_body_limit_defaults_to_the_servers_request_limit():
    """One request limit end to end (issue #13): the ingress refuses what the local server would call too large."""
    from serve import MAX_REQUEST_BYTES

    size = re.fullmatch(r"(\d+)m", values_of(None)["ingress"]["maxBodySize"])
    assert size and int(size.group(1)) * 2**20 == MAX_REQUEST_BYTES
