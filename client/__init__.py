"""segserve client: image in, masks out, against a Triton server (numpy + pillow + tritonclient; no torch)."""

from client.api import ModelInfo, Segmenter
from client.errors import ClientError
from client.results import DetectionResult, SegmentationResult
from client.transport import TLS, Retry

__all__ = ["TLS", "ClientError", "DetectionResult", "ModelInfo", "Retry", "SegmentationResult", "Segmenter"]
