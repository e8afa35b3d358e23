"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"

# Reduced sizes keep the suite inside its time budget on 2 CPU cores; the code paths are the full-size ones.
TEST_SIZES = {"unet": 128, "deeplabv3": 128, "deeplabv3_mobilenet": 128, "maskrcnn": 256}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def small_spec(name: str):
    from export.spec import get_spec

    spec = get_spec(name).with_options(size=TEST_SIZES[name])
    if spec.task == "instance":
        # Random weights score every class near 1/91: threshold 0 keeps a full list of detections to compare.
        spec = spec.with_options(score_threshold=0.0)
    else:
        spec = spec.with_options(max_batch_size=4)
    return spec


def make_checkpoint(spec, path: Path) -> Path:
    """A random-init checkpoint made by the tests (seed 0). Mask R-CNN's objectness and class logits are scaled up
    so scores separate the way a trained model's do: with plain random init every proposal scores nearly the same,
    and float rounding then decides which proposals survive the RPN's top-1000 cut."""
    import torch

    from export.models import build_network

    torch.manual_seed(0)
    net = build_network(spec)
    if spec.task == "instance":
        with torch.no_grad():
            net.rpn.head.cls_logits.weight *= 20.0
            net.roi_heads.box_predictor.cls_score.weight *= 20.0
    torch.save(net.state_dict(), path)
    return path
