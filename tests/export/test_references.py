"""The served modules against references that do not share their code: torchvision's own preprocessing presets and
its full Mask R-CNN model, on a real photo (matplotlib's Grace Hopper sample), with the test checkpoints."""

import numpy as np
import pytest

from support import photo

import torch  # noqa: E402  (required: a missing torch fails, never skips)


def preset_for(name, size):
    """The preprocessing torchvision publishes with the pretrained weights each model's defaults load (geometry
    switched off: the image is already at the model size). Built without downloading anything."""
    from torchvision.models import ResNet34_Weights
    from torchvision.models.segmentation import DeepLabV3_MobileNet_V3_Large_Weights, DeepLabV3_ResNet50_Weights

    if name == "deeplabv3":
        return DeepLabV3_ResNet50_Weights.DEFAULT.transforms(resize_size=None)
    if name == "deeplabv3_mobilenet":
        return DeepLabV3_MobileNet_V3_Large_Weights.DEFAULT.transforms(resize_size=None)
    if name == "unet":  # smp's resnet34 "imagenet" encoder: torchvision's ResNet-34 ImageNet weights and preset
        return ResNet34_Weights.DEFAULT.transforms(crop_size=size, resize_size=size)
    if name == "maskrcnn":  # torchvision normalises inside the model: GeneralizedRCNNTransform
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        transform = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).transform
        return lambda chw: transform.normalize(chw.to(torch.float32) / 255.0)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["deeplabv3", "deeplabv3_mobilenet", "unet", "maskrcnn"])
def test_in_graph_normalisation_equals_torchvisions_preset(exported, name):
    """Constants and channel order: a BGR flip or swapped mean/std moves values by far more than 1e-4."""
    item = exported[name]
    size = item.spec.height
    rgb = photo(size, size)
    ours = item.module.normalise(torch.from_numpy(rgb[None]))[0]
    reference = preset_for(name, size)(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
    assert ours.shape == reference.shape == (3, size, size)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-5)
    # The photo's channels differ, so an RGB/BGR mix-up cannot hide.
    assert (ours[0] - ours[2]).abs().mean() > 0.1


@pytest.mark.parametrize("name", ["deeplabv3_mobilenet", "unet"])
def test_served_semantic_module_equals_network_on_the_preset_input(exported, name):
    """uint8 in -> served module -> class ids equals torchvision-preset input -> bare network -> argmax."""
    item = exported[name]
    size = item.spec.height
    rgb = photo(size, size)
    with torch.inference_mode():
        served = item.module(torch.from_numpy(rgb[None]))
        served = served[0] if isinstance(served, tuple) else served
        x = preset_for(name, size)(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())[None]
        logits = item.module.net(x)
        logits = logits["out"] if isinstance(logits, dict) else logits
    expected = logits.argmax(dim=1)
    assert torch.mean((served.to(torch.int64) == expected).to(torch.float32)).item() >= 0.999
    assert len(torch.unique(expected)) >= 8


def test_maskrcnn_core_equals_torchvisions_full_model_at_800(exported):
    """Same weights (the test checkpoint), same 800x800 photo: the exported core (no transform, branch-free NMS,
    fixed-size outputs) against torchvision's complete maskrcnn_resnet50_fpn in eval mode. Boxes, labels, scores
    and pasted masks must match."""
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from client.postprocess import paste_masks
    from export.compare import compare_detections, detections_from_outputs
    from export.models import build_served_module
    from export.parity import run_eager
    from export.spec import get_spec

    item = exported["maskrcnn"]
    spec = get_spec("maskrcnn").with_options(max_detections=20)
    assert (spec.height, spec.width) == (800, 800)
    rgb = photo(800, 800)
    core = build_served_module(spec, str(item.checkpoint))
    ours = detections_from_outputs(run_eager(core, spec, rgb[None]))
    full = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91,
                                 box_score_thresh=spec.score_threshold, box_detections_per_img=20)
    full.load_state_dict(torch.load(item.checkpoint, map_location="cpu", weights_only=True))
    full.eval()
    with torch.inference_mode():
        (reference,) = full([torch.from_numpy(rgb).permute(2, 0, 1).to(torch.float32) / 255.0])
    ref = {"boxes": reference["boxes"].numpy(), "scores": reference["scores"].numpy(),
           "labels": reference["labels"].numpy().astype(np.int32), "masks": reference["masks"][:, 0].numpy()}
    ours["masks"] = paste_masks(ours["masks"], ours["boxes"], 800, 800).astype(np.float32)
    assert len(ref["boxes"]) == 20, "the reference must fill the list for the comparison to mean something"
    result = compare_detections(ref, ours, max_detections=20, score_threshold=spec.score_threshold)
    assert result.passed and result.matched >= 19, result.summary
    assert len(np.unique(ref["labels"])) >= 2
