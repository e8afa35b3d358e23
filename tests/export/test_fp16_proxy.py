"""The FP16 proxy script runs end to end (on CPU here, semantic models: torchvision's CPU NMS has no FP16 kernel).
Its real use is on CUDA: `python tests/gpu/fp16_proxy.py`."""

import json
import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
SCRIPT = Path(__file__).resolve().parents[1] / "gpu" / "fp16_proxy.py"


def test_fp16_proxy_reports_agreement_per_model(tmp_path, monkeypatch):
    out = tmp_path / "fp16.json"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--device", "cpu", "--size", "64", "--images", "1",
                                      "--models", "deeplabv3_mobilenet", "unet", "--json", str(out)])
    namespace = runpy.run_path(str(SCRIPT))
    assert namespace["main"]() == 0
    report = json.loads(out.read_text())
    assert set(report) == {"deeplabv3_mobilenet", "unet"}
    assert all("pixel agreement" in r["summary"] for r in report.values())
