"""The first layers of every served graph: uint8 NHWC RGB -> float32 NCHW, normalised with the spec's mean/std.

Its own module so that the model registry and the Mask R-CNN core both use it without importing each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from export.spec import ModelSpec

if TYPE_CHECKING:
    import torch


def image_normaliser(spec: ModelSpec) -> "torch.nn.Module":
    """uint8 NHWC RGB -> float32 NCHW normalised with the spec's mean/std."""
    import torch

    class NormaliseImage(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            mean = torch.tensor(spec.mean).view(1, 3, 1, 1) * 255.0
            std = torch.tensor(spec.std).view(1, 3, 1, 1) * 255.0
            # (x/255 - mean)/std folded into one multiply-add.
            self.register_buffer("scale", 1.0 / std)
            self.register_buffer("shift", -mean / std)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            # Cast before the transpose: TensorRT takes UINT8 only at the network boundary, consumed by a Cast.
            return image.to(torch.float32).permute(0, 3, 1, 2) * self.scale + self.shift

    return NormaliseImage()
