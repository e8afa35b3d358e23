"""Shared fixtures: small exports of every registered model, made once per session, and guards that keep a green run
meaningful (required tools present, the shared repository left untouched)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import TOOLS, copy_repository, make_checkpoint, small_spec

# Triton's python backend stub imports model.py from the model repository; without this it writes __pycache__ there,
# so the session's shared repository changed under the tests that read it (test_repository_layout failed whenever an
# integration test ran first). Every process the tests start inherits it.
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


# Only tests/gpu may skip (TensorRT and a GPU are not obtainable everywhere). Anywhere else a skip means a missing
# tool or dependency that `make test` promises to have, so it fails the run instead of turning it silently green.
# Exception: checks that only make sense *without* TensorRT skip where it is installed.
ALLOWED_SKIP_REASONS = ("TensorRT is installed here",)


def _skip_is_allowed(path, reason: str) -> bool:
    parts = Path(str(path)).parts
    return ("tests" in parts and "gpu" in parts) or any(r in reason for r in ALLOWED_SKIP_REASONS)


def _as_failure(report, path) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not _skip_is_allowed(path, reason):
            report.outcome = "failed"
            report.longrepr = f"skipped outside tests/gpu, which fails the run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _as_failure(outcome.get_result(), item.path)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _as_failure(outcome.get_result(), collector.path)


@dataclass
class Exported:
    spec: object
    module: object  # the eager served module, same weights as the export (the test-made checkpoint)
    onnx_path: Path
    checkpoint: Path  # the test-made checkpoint both were built from


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Exported]:
    """Every registered model exported small to the ``local`` target from a test-made checkpoint (trained-model
    statistics, see support.py), parity check on; ``module`` is the eager served module with the same weights.
    ``exported["_repository"]`` is shared by the whole run and must stay read-only: serve a copy
    (``repository_copy``); the session fails at teardown if anything in it changed."""
    import torch
    from export.config import ServingOptions
    from export.models import MODELS, build_served_module
    from export.pipeline import export_model

    torch.set_num_threads(2)
    work = tmp_path_factory.mktemp("export")
    repo = work / "model_repository"
    out = {}
    for name in MODELS:
        spec = small_spec(name)
        checkpoint = make_checkpoint(spec, work / f"{name}.pt")
        result = export_model(spec, ServingOptions.for_target("local"), repo, weights=str(checkpoint),
                              work_dir=work / "onnx", progress=False)
        out[name] = Exported(spec, build_served_module(spec, str(checkpoint)), result.onnx_path, checkpoint)
    out["_repository"] = repo  # type: ignore[assignment]
    before = _snapshot(repo)
    yield out
    after = _snapshot(repo)
    if after != before:
        changed = sorted(set(after) ^ set(before) | {k for k in after if before.get(k) != after[k]})
        pytest.fail(f"a test wrote into the shared model repository {repo}: {changed[:5]}", pytrace=False)


@pytest.fixture
def repository_copy(exported, tmp_path) -> Path:
    return copy_repository(exported["_repository"], tmp_path / "model_repository")


@pytest.fixture(scope="session")
def triton_tools() -> Path:
    """The fetched tritonserver; missing tools fail the run (only tests/gpu may skip)."""
    if not (TOOLS / "triton" / ".complete").exists():
        pytest.fail(f"tritonserver is not fetched into {TOOLS / 'triton'}: run `make tools`", pytrace=False)
    return TOOLS / "triton"


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    helm = TOOLS / "helm" / "helm"
    if not helm.is_file():
        pytest.fail(f"helm is not fetched into {helm.parent}: run `make tools`", pytrace=False)
    return helm


@pytest.fixture(scope="session")
def fp16_exports(tmp_path_factory):
    """Each model's trained or conditioned FP32 module and its ``--precision fp16`` export (tests/fp16_fixtures.py),
    built once for the CPU gate (tests/export/test_fp16.py) and the engines (tests/gpu)."""
    from fp16_fixtures import make_fp16_exports

    return make_fp16_exports(tmp_path_factory.mktemp("fp16"))
