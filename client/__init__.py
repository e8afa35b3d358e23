"""segserve client: image in, masks out, against a Triton server (numpy + pillow + tritonclient; no torch)."""

from client.api import DetectionResult, ModelInfo, SegmentationResult, Segmenter
from client.errors import ClientError

__all__ = ["ClientError", "DetectionResult", "ModelInfo", "SegmentationResult", "Segmenter"]
