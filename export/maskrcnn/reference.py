"""torchvision's own answer, one image at a time: the reference the batched core must reproduce.

Runs the core's backbone, then torchvision's unmodified ``RegionProposalNetwork`` and ``RoIHeads`` (its own
``batched_nms``) on each image alone, at batch 1, and pads the result the way the served outputs are padded.
"""

from __future__ import annotations

import numpy as np


def torchvision_outputs(core, images: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs keyed by the spec's names for a uint8 NHWC batch, each image run alone through torchvision."""
    import torch
    from torchvision.models.detection.image_list import ImageList

    d = core.max_detections
    rows: dict[str, list[np.ndarray]] = {"BOXES": [], "SCORES": [], "LABELS": [], "MASKS": [], "NUM_DETECTIONS": []}
    with torch.inference_mode():
        for image in images:
            x = core.normalise(torch.from_numpy(np.ascontiguousarray(image[None])))
            listed = ImageList(x, [core.size])
            features = core.backbone(x)
            proposals, _ = core.rpn(listed, features)
            (det,), _ = core.roi_heads(features, proposals, listed.image_sizes)
            n = len(det["scores"])
            r = core.mask_resolution
            padded = {
                "BOXES": np.zeros((d, 4), np.float32),
                "SCORES": np.zeros((d,), np.float32),
                "LABELS": np.zeros((d,), np.int32),
                "MASKS": np.zeros((d, r, r), np.float16),
            }
            padded["BOXES"][:n] = det["boxes"].numpy()
            padded["SCORES"][:n] = det["scores"].numpy()
            padded["LABELS"][:n] = det["labels"].numpy()
            padded["MASKS"][:n] = det["masks"][:, 0].numpy()
            for name, value in padded.items():
                rows[name].append(value)
            rows["NUM_DETECTIONS"].append(np.array([n], np.int32))
    return {name: np.stack(values) for name, values in rows.items()}
