"""Helpers shared by the test modules (fixtures live in conftest.py).

Test checkpoints carry a trained model's *statistics* without training: random init (seed 0), BatchNorm running
statistics recalibrated on a few real-looking images, and Mask R-CNN's score layers scaled so scores spread the way a
trained model's do. With plain random init and BatchNorm's default running stats (mean 0, var 1) the eval-mode
networks collapse: DeepLabV3-MobileNet answered class 18 for every pixel of every image (even all zeros), and Mask
R-CNN scored every class near 1/91 (or, with logits x20, every detection 1.0), so any two runs agreed for free.
``fixture_statistics`` measures what a fixture answers; tests/export/test_fixtures.py asserts it is not degenerate.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from export.tensorrt.gpu import GpuInfo
from serve.server import ServerConfig, TritonServer, free_port  # free_port: the tests' own sockets

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"

# Reduced sizes keep the suite inside its time budget on 2 CPU cores; the code paths are the full-size ones.
def no_findings() -> str:
    """What an export or import summary says when the default release's TensorRT table finds nothing."""
    from export.tensorrt.static_check import release_target

    return f"TensorRT static check ({release_target()[1]}): no findings"


TEST_SIZES = {"unet": 128, "deeplabv3": 128, "deeplabv3_mobilenet": 128, "maskrcnn": 256}

# Mask R-CNN calibration targets: standard deviation of the RPN objectness logits and of the box classifier's logits
# over the calibration images. Objectness spread decides which proposals survive the top-N cuts (near-equal logits
# would leave that to float rounding); class-logit spread 2 puts detection scores between ~0.1 and ~0.9 (measured:
# tests/export/test_fixtures.py).
RPN_LOGIT_STD = 3.0
CLASS_LOGIT_STD = 2.0


# A GPU for engine-build tests that never touch one (sidecars, caches, served directories).
H100 = GpuInfo("NVIDIA H100 80GB HBM3", "9.0")


def onnx_model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=()):
    """A one-graph ONNX model from helper-made nodes and value infos (the static-checker tests' graphs)."""
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])


# Checks of what happens without TensorRT (the skip reason is the one tests/conftest.py allows outside tests/gpu).
WITHOUT_TENSORRT = pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                                      reason="TensorRT is installed here")


def tensor_info(name, dtype, shape=(1, 3, 8, 8)):
    """A value info of ``dtype`` (a TensorProto type) and ``shape`` (None: unknown)."""
    from onnx import helper

    return helper.make_tensor_value_info(name, dtype, None if shape is None else list(shape))


# The optional heavy extras: a CPU machine imports every module without them (torch etc. load inside functions).
HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "onnxscript", "tensorrt", "segmentation_models_pytorch",
         "polygraphy", "onnx_graphsurgeon", "cv2")

def blocker(blocked: tuple[str, ...]) -> str:
    """Python code that makes importing any top-level package in ``blocked`` fail from then on."""
    return textwrap.dedent(f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {tuple(blocked)!r}:
                    raise ImportError(f"blocked import: {{name}}")
        sys.meta_path.insert(0, Block())
    """)


def run_without_heavy_imports(code: str, blocked: tuple[str, ...] = HEAVY) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing any of ``blocked`` (default HEAVY) fails."""
    return subprocess.run([sys.executable, "-c", blocker(blocked) + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


@contextmanager
def running_triton(repository: Path, log_path: Path, ready_timeout_s: float = 300, **fields):
    """The real tritonserver serving ``repository`` on three free loopback ports, ready; stopped on leaving.
    ``fields``: further ``ServerConfig`` fields (e.g. ``admin_key``)."""
    config = ServerConfig.on_free_ports(repository, **fields)
    with TritonServer(config, log_path=log_path) as triton:
        triton.wait_ready(ready_timeout_s)
        yield triton


def copy_repository(source: Path, target: Path) -> Path:
    """A private copy of a model repository (files hard-linked: cheap; directories new, so whatever a server writes
    beside the files stays in the copy)."""
    shutil.copytree(source, target, copy_function=os.link)
    return target


def small_spec(name: str):
    """The registered spec at the test size; semantic models batch up to 4 so batching is exercised."""
    from export.spec import get_spec

    spec = get_spec(name).with_options(size=TEST_SIZES[name])
    if spec.task != "instance":
        spec = spec.with_options(max_batch_size=4)
    return spec


@lru_cache(maxsize=None)
def photo_path() -> Path:
    """A real photograph shipped in a pinned test dependency (matplotlib's sample data: Grace Hopper, 512x600 RGB
    JPEG, public domain)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: install the test extra (pip install -e '.[test]').")
    return path


def photo(height: int | None = None, width: int | None = None) -> np.ndarray:
    """The test photo as RGB uint8, optionally stretched to ``height`` x ``width`` (bilinear)."""
    from PIL import Image

    image = Image.open(photo_path()).convert("RGB")
    if height is not None:
        image = image.resize((width or height, height), Image.BILINEAR)
    return np.array(image, dtype=np.uint8)  # writable: torch.from_numpy warns on read-only arrays


def sample_images(height: int, width: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` distinct uint8 RGB images: the photo (first, shifted by ``seed``) then synthetic scenes."""
    from export.samples import synthetic_image

    first = np.roll(photo(height, width), seed * 7, axis=1)
    others = [synthetic_image(height, width, seed=seed + 100 + i) for i in range(count - 1)]
    return np.stack([first, *others])[:count]


def recalibrate_batchnorm(module, images) -> None:
    """Replace every BatchNorm's running stats with the exact mean/var over ``images`` (train-mode forward passes,
    momentum None = cumulative average), then back to eval."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    with torch.no_grad():
        module(images)
    module.eval()
    for m in norms:
        m.momentum = 0.1


def make_checkpoint(spec, path: Path) -> Path:
    """A deterministic test checkpoint for ``spec`` (seed 0) with trained-model statistics (see the module doc)."""
    import torch

    from export.models import build_network, image_normaliser

    torch.manual_seed(0)
    net = build_network(spec)
    images = image_normaliser(spec)(torch.from_numpy(sample_images(spec.height, spec.width, 4)))
    if spec.task == "semantic":
        recalibrate_batchnorm(net, images)
    else:
        _calibrate_maskrcnn(net, spec, images)
    torch.save(net.state_dict(), path)
    return path


def _calibrate_maskrcnn(net, spec, images) -> None:
    import torch

    from export.maskrcnn import MaskRCNNCore

    recalibrate_batchnorm(net.backbone, images)  # torchvision builds the backbone with plain BatchNorm2d untrained
    with torch.no_grad():
        features = list(net.backbone(images).values())
        objectness = torch.cat([o.flatten() for o in net.rpn.head(features)[0]])
        net.rpn.head.cls_logits.weight *= RPN_LOGIT_STD / objectness.std()
        net.rpn.head.cls_logits.bias.zero_()
        seen = {}
        hook = net.roi_heads.box_predictor.cls_score.register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
        try:
            probe = MaskRCNNCore(net, spec.with_options(score_threshold=0.5))  # few boxes: a cheap probe
            probe(torch.from_numpy(sample_images(spec.height, spec.width, 1)))
        finally:
            hook.remove()
        scale = CLASS_LOGIT_STD / seen["x"].std()
        net.roi_heads.box_predictor.cls_score.weight *= scale
        net.roi_heads.box_predictor.cls_score.bias *= scale
    net.eval()


def fixture_statistics(spec, module, image: np.ndarray) -> dict:
    """What the served ``module`` answers on one model-size ``image``: for semantic models the classes present and
    the largest class's pixel share; for Mask R-CNN the detection count, score range and real (bit-level) ties."""
    import torch

    with torch.inference_mode():
        out = module(torch.from_numpy(np.ascontiguousarray(image[None])))
    if spec.task == "semantic":
        mask = (out[0] if isinstance(out, (tuple, list)) else out)[0].numpy()
        counts = np.bincount(mask.ravel().astype(np.int64))
        return {"classes": int(np.count_nonzero(counts)), "largest_share": float(counts.max() / mask.size),
                "mask": mask}
    boxes, scores, labels, masks, count = (t.numpy() for t in out)
    n = int(count.reshape(-1)[0])
    s = np.sort(scores[0, :n].astype(np.float64))
    return {"detections": n, "min_score": float(s.min()) if n else 0.0, "max_score": float(s.max()) if n else 0.0,
            "ties": int(np.sum(np.diff(s) <= 1e-7)), "labels": int(len(np.unique(labels[0, :n]))),
            "scores": s}
