# segserve: `make demo` runs the main job, `make test` the whole suite. Both set themselves up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
TOOLS ?= .tools
REPO ?= model_repository
DEMO_OUT ?= demo-out
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=
MODEL ?= deeplabv3_mobilenet
URL ?= localhost:$(GRPC_PORT)
CONCURRENCY ?= 1,2,4,8
REQUEST_RATE ?=
PERF_OUT ?= perf-out
PERF_ARGS ?=
VPY := $(VENV)/bin/python
FETCH := TOOLS_DIR=$(TOOLS) PYTHON=$(PYTHON) scripts/fetch-tools.sh
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[export,test,perf,mutation]'
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv with the project and its export/test/perf/mutation extras

tools: ## fetch tritonserver (+ its python env), perf_analyzer, helm, the Gateway API validators, u2netp.onnx and the quokka photo into .tools/
	$(FETCH) triton perf helm gateway u2netp quokka

export: venv ## export the demo models (export.spec.DEMO_MODELS) for the local CPU Triton (MODELS="unet ..." to choose)
	$(VPY) -m export $(or $(MODELS),$$($(VPY) -c 'from export.spec import DEMO_MODELS; print(*DEMO_MODELS)')) \
	  --target local --output $(REPO)

serve: venv tools ## run the local tritonserver on model_repository/ in the foreground (exports first if empty)
	$(VPY) -m serve --repository $(REPO) --export-if-empty --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) \
	  --metrics-port $(METRICS_PORT)

demo: venv tools ## export the demo models (u2netp really trained), serve them on a real local Triton, segment images
	$(VPY) scripts/demo.py --repository $(REPO) --out $(DEMO_OUT)

perf: venv ## load-test MODEL on a running server (URL=host:8001; CONCURRENCY=1,2,4,8; REQUEST_RATE=) -> perf-out/MODEL/
	$(FETCH) perf quokka
	$(VPY) -m loadtest run --model $(MODEL) --url $(URL) --concurrency $(CONCURRENCY) \
	  $(if $(REQUEST_RATE),--request-rate $(REQUEST_RATE)) --out $(PERF_OUT) $(PERF_ARGS)

test: venv tools ## run the whole test suite (unit, export, integration with the real tritonserver, chart)
	$(VPY) -m pytest $(PYTEST_ARGS)

unit-test: venv ## unit tests only (fast, no server)
	$(VPY) -m pytest tests/unit $(PYTEST_ARGS)

chart-test: venv tools ## Helm chart tests only (real helm, offline schema validation)
	$(VPY) -m pytest tests/chart $(PYTEST_ARGS)

mutation: venv ## mutation score (mutmut) of the pure modules against their fast unit tests; prints kill rate per module
	$(VPY) scripts/mutation.py

clean: ## remove generated artifacts (keeps .venv and .tools)
	rm -rf build $(DEMO_OUT) .pytest_cache mutants
	find $(REPO) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

.PHONY: help venv tools export serve demo perf test unit-test chart-test mutation clean
