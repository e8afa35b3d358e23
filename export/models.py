"""Registry of model builders: ``MODELS[name]`` builds the eager PyTorch module that gets exported.

Each builder returns the *served* module: uint8 NHWC images in, normalisation inside, compact outputs out (class-id
mask for semantic models, fixed-size padded detections for Mask R-CNN). torch, torchvision and
segmentation_models_pytorch are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from export.errors import ExportError, WeightsUnavailableError, require
from export.normalise import image_normaliser
from export.spec import SPECS, ModelSpec

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS = "DEFAULT"
NO_WEIGHTS = "none"


@dataclass(frozen=True)
class ModelEntry:
    spec: ModelSpec
    # build(spec, pretrained) -> the bare network (not yet wrapped)
    build_network: Callable[[ModelSpec, bool], "torch.nn.Module"]


def _unet(spec: ModelSpec, pretrained: bool) -> "torch.nn.Module":
    smp = require("segmentation_models_pytorch", "segmentation-models-pytorch")
    # smp publishes encoder weights only; the decoder starts random and needs fine-tuning (use --checkpoint).
    return smp.Unet("resnet34", encoder_weights="imagenet" if pretrained else None, classes=spec.num_classes)


def _deeplabv3(spec: ModelSpec, pretrained: bool) -> "torch.nn.Module":
    from torchvision.models.segmentation import deeplabv3_resnet50

    return deeplabv3_resnet50(weights="DEFAULT" if pretrained else None, weights_backbone=None,
                              num_classes=spec.num_classes)


def _deeplabv3_mobilenet(spec: ModelSpec, pretrained: bool) -> "torch.nn.Module":
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    return deeplabv3_mobilenet_v3_large(weights="DEFAULT" if pretrained else None, weights_backbone=None,
                                        num_classes=spec.num_classes)


def _maskrcnn(spec: ModelSpec, pretrained: bool) -> "torch.nn.Module":
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    return maskrcnn_resnet50_fpn(
        weights="DEFAULT" if pretrained else None,
        weights_backbone=None,
        num_classes=spec.num_classes,
        box_score_thresh=spec.score_threshold,
        box_detections_per_img=spec.max_detections,
        rpn_pre_nms_top_n_test=spec.rpn_pre_nms_top_n,
        rpn_post_nms_top_n_test=spec.rpn_post_nms_top_n,
    )


MODELS: dict[str, ModelEntry] = {
    "unet": ModelEntry(SPECS["unet"], _unet),
    "deeplabv3": ModelEntry(SPECS["deeplabv3"], _deeplabv3),
    "deeplabv3_mobilenet": ModelEntry(SPECS["deeplabv3_mobilenet"], _deeplabv3_mobilenet),
    "maskrcnn": ModelEntry(SPECS["maskrcnn"], _maskrcnn),
}


def build_network(spec: ModelSpec, weights: str = NO_WEIGHTS) -> "torch.nn.Module":
    """The bare network for ``spec`` with ``weights``: ``DEFAULT`` (pretrained), ``none`` or a checkpoint path."""
    require("torch")
    try:
        entry = MODELS[spec.name]
    except KeyError:
        from export.importer.builtin import IMPORTED

        if spec.name in IMPORTED:
            raise ExportError(f"`{spec.name}` is imported from a trained ONNX file, not built in PyTorch: export it "
                              f"with `python -m export {spec.name}`.") from None
        raise ExportError(f"Unknown model `{spec.name}`. Available: {', '.join(sorted(MODELS))}.") from None
    if weights == DEFAULT_WEIGHTS:
        try:
            net = entry.build_network(spec, True)
        except ExportError:
            raise
        except Exception as exc:  # urllib/requests/hub errors differ by library; all mean "could not fetch"
            raise WeightsUnavailableError(
                f"Could not download pretrained weights for `{spec.name}` ({type(exc).__name__}: "
                f"{textwrap.shorten(str(exc).splitlines()[0], 160, placeholder=' ...')}). Offline? Use --weights none or "
                "--checkpoint PATH."
            ) from exc
    elif weights == NO_WEIGHTS:
        log.warning("!!! `%s` uses RANDOM weights (--weights none): its masks will be meaningless. "
                    "Use --weights DEFAULT or --checkpoint PATH for real predictions.", spec.name)
        net = entry.build_network(spec, False)
    else:
        net = entry.build_network(spec, False)
        load_checkpoint(net, Path(weights))
    return net.eval()


def load_checkpoint(net: "torch.nn.Module", path: Path) -> None:
    """Load a state dict (bare, or under ``state_dict``/``model``) strictly, with a readable error."""
    import torch

    if not path.is_file():
        raise ExportError(f"Checkpoint `{path}` does not exist. Pass a state-dict file saved with torch.save.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(f"Checkpoint `{path}` is not a readable torch state dict: {_load_error(exc)}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ExportError(f"Checkpoint `{path}` holds a {type(state).__name__}, not a state dict.")
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shape:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shape)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ExportError(f"Checkpoint `{path}` does not fit `{type(net).__name__}`: {'; '.join(parts)}.")
    net.load_state_dict(state, strict=True)


def _load_error(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without PyTorch's advice to retry with
    ``weights_only=False``: that runs arbitrary code from the file, so it is never the fix here."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it pickles Python objects (`{found[1]}`), not only tensors. Save the weights alone with "
                "`torch.save(model.state_dict(), path)` and pass that file.")
    unpickler = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln
             and "Weights only load failed" not in ln]
    first = unpickler[1].strip() if unpickler else (lines[0] if lines else "")
    return f"not a file written by torch.save ({type(exc).__name__}{': ' + first if first else ''})."


def build_served_module(spec: ModelSpec, weights: str = NO_WEIGHTS) -> "torch.nn.Module":
    """The module that is exported and served: uint8 NHWC ``IMAGE`` in, the spec's outputs out."""
    net = build_network(spec, weights)
    if spec.task == "semantic":
        return semantic_wrapper(net, spec)
    from export.maskrcnn import MaskRCNNCore

    return MaskRCNNCore(net, spec).eval()


def semantic_wrapper(net: "torch.nn.Module", spec: ModelSpec) -> "torch.nn.Module":
    import torch

    class SemanticSegmenter(torch.nn.Module):
        """uint8 NHWC -> normalise -> network -> ArgMax (uint8 class ids) [+ float16 softmax]."""

        def __init__(self) -> None:
            super().__init__()
            self.normalise = image_normaliser(spec)
            self.net = net
            self.mask_dtype = torch.uint8 if spec.mask_dtype == "UINT8" else torch.int32

        def forward(self, image: torch.Tensor):
            logits = self.net(self.normalise(image))
            if isinstance(logits, dict):  # torchvision segmentation models return {"out", "aux"}
                logits = logits["out"]
            mask = logits.argmax(dim=1).to(self.mask_dtype)
            if spec.with_probs:
                return mask, logits.softmax(dim=1).to(torch.float16)
            return mask

    return SemanticSegmenter().eval()
