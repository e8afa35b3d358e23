"""FP16 test fixtures shared by tests/export/test_fp16.py (CPU, ONNX Runtime) and tests/gpu (TensorRT engines):
each model's trained or conditioned FP32 eager module and its ``--precision fp16`` ONNX export.

Random weights give the FP16 gate nothing to measure: a random network with BatchNorm recalibrated (the
non-degenerate fixture of tests/support.py) is *chaotic* (every residual block amplifies a perturbation by ~1.2x:
on DeepLabV3-ResNet50 at 128 px the relative FP16 error grows from 0.03% after the stem to 10.8% at the logits) and
its random decoder draws fragmented class maps (16-21 classes on a 128-px image) with near-tied logits (UNet: top-2
margin under 0.0011 on 0.5% of the pixels). Its FP16 graph then disagrees wherever two scores tie: the untrained
UNet agreed on 99.45%, the untrained DeepLabV3s on 99.54%, a measure of ties, not of FP16. So:

- the semantic checkpoints are *trained* end to end (``train_on_scenes``) on a toy task with ground truth: the
  synthetic scenes' shapes labelled by dominant colour (``export.samples.synthetic_scene``), Adam on 64-px scenes,
  residual branches damped first (the zero-init-residual start). That gives confident logits away from the shapes'
  edges, as a trained segmenter has; ``TRAIN_STEPS`` lists the steps, time and held-out accuracy measured;
- Mask R-CNN is too slow to train here; its checkpoint is conditioned (``trained_like``): trained residual networks
  keep their residual branches small, so each branch's last BatchNorm is scaled by 0.1 before recalibrating (logit
  error ~0.5%), and tests/support.py spreads its RPN and class logits as a trained detector's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

RESIDUAL_DAMPING = 0.1
# Adam steps per semantic model; measured on 2 cores (training time; pixel accuracy on held-out 128-px scenes, 57.5%
# background; FP16 agreement as is / every FP16 tensor rounded, worst of 4 images):
TRAIN_STEPS = {
    "unet": 40,  # 15 s; 75%; 99.96 / 99.97% (untrained 99.45 / 99.41%)
    "deeplabv3": 30,  # 40 s; 77%; 99.99 / 99.98% (untrained 99.73 / 99.54%)
    "deeplabv3_mobilenet": 80,  # 20 s; 71%; 99.97 / 99.96% (untrained 99.54 / 99.58%)
}
TRAIN_BATCH = 16
TRAIN_SIZE = 64
TRAIN_LR = 3e-3


def trained_like(net, spec, images) -> None:
    """Damp every residual branch (its last BatchNorm's scale x RESIDUAL_DAMPING), then recalibrate BatchNorm
    (Mask R-CNN, which is not trained here)."""
    from support import recalibrate_batchnorm

    damp_residual_branches(net)
    recalibrate_batchnorm(net.backbone if spec.task == "instance" else net, images)


def damp_residual_branches(net) -> None:
    from torchvision.models.mobilenetv3 import InvertedResidual
    from torchvision.models.resnet import BasicBlock, Bottleneck

    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, Bottleneck):
                module.bn3.weight *= RESIDUAL_DAMPING
            elif isinstance(module, BasicBlock):
                module.bn2.weight *= RESIDUAL_DAMPING
            elif isinstance(module, InvertedResidual) and module.use_res_connect:
                module.block[-1][1].weight *= RESIDUAL_DAMPING


def scene_batch(size: int, count: int, seed: int):
    """``count`` labelled synthetic scenes (``export.samples.synthetic_scene``): uint8 NHWC images, int64 labels."""
    import numpy as np

    from export.samples import synthetic_scene

    images, labels = zip(*(synthetic_scene(size, size, seed=seed + i) for i in range(count)))
    return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(labels))


def train_on_scenes(net, spec) -> None:
    """Train ``net`` (a semantic network) end to end on labelled scenes; residual branches damped first (the
    zero-init-residual start), BatchNorm recalibrated at the spec's size after."""
    from export.normalise import image_normaliser
    from support import recalibrate_batchnorm

    normalise = image_normaliser(spec)
    torch.manual_seed(0)
    damp_residual_branches(net)
    optimiser = torch.optim.Adam(net.parameters(), lr=TRAIN_LR)
    net.train()
    for step in range(TRAIN_STEPS[spec.name]):
        images, labels = scene_batch(TRAIN_SIZE, TRAIN_BATCH, seed=1000 + step * TRAIN_BATCH)
        logits = net(normalise(images))
        logits = logits["out"] if isinstance(logits, dict) else logits  # torchvision: {"out", "aux"}
        loss = torch.nn.functional.cross_entropy(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    recalibrate_batchnorm(net, normalise(scene_batch(spec.height, TRAIN_BATCH, seed=1000)[0]))


def make_fp16_exports(work: Path) -> dict:
    """Each model: (spec, the trained or conditioned FP32 eager module, its FP16 ONNX export by the production export
    path)."""
    from export.models import MODELS, build_served_module
    from export.normalise import image_normaliser
    from export.onnx_export import export_onnx
    from support import make_checkpoint, sample_images, small_spec

    torch.set_num_threads(2)
    out = {}
    for name in MODELS:
        spec = small_spec(name)
        module = build_served_module(spec, str(make_checkpoint(spec, work / f"{name}.pt")))
        if name in TRAIN_STEPS:
            train_on_scenes(module.net, spec)
        else:
            images = image_normaliser(spec)(torch.from_numpy(sample_images(spec.height, spec.width, 4, seed=7)))
            trained_like(module, spec, images)
        out[name] = (spec, module, export_onnx(module, spec, work / f"{name}.onnx", precision="fp16"))
    return out
