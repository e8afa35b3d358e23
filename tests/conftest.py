"""Shared fixtures: small exports of every registered model, made once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from support import make_checkpoint, small_spec


@dataclass
class Exported:
    spec: object
    module: object  # the eager served module, same weights as the export (the test-made checkpoint)
    onnx_path: Path
    parity: str


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> dict[str, Exported]:
    """Every registered model exported small to the ``local`` target from a test-made checkpoint, parity check
    on; ``module`` is the eager served module with the same weights."""
    torch = pytest.importorskip("torch")
    from export.config import ServingOptions
    from export.models import MODELS, build_served_module
    from export.pipeline import export_model

    torch.set_num_threads(2)
    work = tmp_path_factory.mktemp("export")
    repo = work / "model_repository"
    out = {}
    for name in MODELS:
        spec = small_spec(name)
        checkpoint = str(make_checkpoint(spec, work / f"{name}.pt"))
        result = export_model(spec, ServingOptions.for_target("local"), repo, weights=checkpoint,
                              work_dir=work / "onnx", progress=False)
        out[name] = Exported(spec, build_served_module(spec, checkpoint), result.onnx_path, result.parity)
    out["_repository"] = repo  # type: ignore[assignment]
    return out
