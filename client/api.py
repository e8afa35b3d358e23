"""A thin Triton client for the segserve models: image in, masks out (numpy + pillow + tritonclient; no torch).

    from client import Segmenter
    seg = Segmenter("localhost:8001", "deeplabv3")     # reads the model's spec from the server
    result = seg.segment("street.jpg")                  # class-id mask at the image's original resolution

Everything the client needs to know about a model (input size, tensor names, task, class names) comes from the
served ``config.pbtxt``, which ``python -m export`` generates from the model spec.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from client.errors import ClientError
from client.postprocess import paste_masks, unletterbox_boxes, unletterbox_mask
from client.preprocess import ImageLike, Letterbox, letterbox, load_image

PROTOCOLS = ("grpc", "http")
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
MAX_MESSAGE_BYTES = 2**31 - 1  # the gRPC default (4 MB) is far below a batch of masks or PROBS


@dataclass(frozen=True)
class ModelInfo:
    """A served model as its config describes it."""

    name: str
    task: str
    height: int
    width: int
    max_batch_size: int
    input_name: str
    output_names: tuple[str, ...]
    class_names: tuple[str, ...]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelInfo:
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        task = params.get("segserve.task")
        if task not in ("semantic", "instance"):
            raise ClientError(f"Model `{config.get('name')}` is not a segserve model (no segserve.task parameter).")
        (image,) = config["input"]
        height, width, _ = (int(d) for d in image["dims"])
        return cls(
            name=config["name"],
            task=task,
            height=height,
            width=width,
            max_batch_size=int(config.get("max_batch_size", 0)),
            input_name=image["name"],
            output_names=tuple(o["name"] for o in config["output"]),
            class_names=tuple(json.loads(params.get("segserve.class_names", "[]"))),
        )


@dataclass(frozen=True)
class SegmentationResult:
    """Semantic segmentation of one image, at its original resolution."""

    mask: np.ndarray  # [H, W] class ids
    class_names: tuple[str, ...]
    latency_ms: float

    @property
    def classes(self) -> list[tuple[int, str, float]]:
        """(class id, name, fraction of pixels) for each class present, largest first."""
        ids, counts = np.unique(self.mask, return_counts=True)
        total = self.mask.size
        found = [(int(i), self.name(int(i)), c / total) for i, c in zip(ids, counts)]
        return sorted(found, key=lambda item: -item[2])

    def name(self, class_id: int) -> str:
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else f"class_{class_id}"


@dataclass(frozen=True)
class DetectionResult:
    """Instance segmentation of one image, in original image coordinates."""

    boxes: np.ndarray  # [N, 4] float32 (x1, y1, x2, y2)
    scores: np.ndarray  # [N] float32
    labels: np.ndarray  # [N] int32
    masks: np.ndarray  # [N, H, W] bool
    class_names: tuple[str, ...]
    latency_ms: float

    @property
    def names(self) -> list[str]:
        return [self.class_names[i] if 0 <= i < len(self.class_names) else f"class_{i}" for i in self.labels]

    def __len__(self) -> int:
        return len(self.scores)


class Segmenter:
    """One served segserve model behind a Triton URL (gRPC by default, HTTP optional)."""

    def __init__(self, url: str | None = None, model: str = "deeplabv3_mobilenet", *, protocol: str = "grpc",
                 ready_timeout_s: float = 30.0, mask_threshold: float = 0.5) -> None:
        if protocol not in PROTOCOLS:
            raise ClientError(f"Unknown protocol `{protocol}`. Available: {', '.join(PROTOCOLS)}.")
        self.protocol = protocol
        self.url = url or DEFAULT_URLS[protocol]
        self.mask_threshold = mask_threshold
        self.last_wire_bytes: tuple[int, int] | None = None  # (request tensor bytes, gRPC response message bytes)
        self._client = _connect(self.url, protocol, ready_timeout_s)
        self.info = self._model_info(model)

    # -- server ---------------------------------------------------------------------------------------------
    def _model_info(self, model: str) -> ModelInfo:
        served = served_models(self._client, self.protocol)
        if model not in served:
            listing = ", ".join(sorted(served)) or "none"
            raise ClientError(f"Unknown model `{model}` at {self.protocol}://{self.url}. Served: {listing}.")
        try:
            config = self._client.get_model_config(model, **({"as_json": True} if self.protocol == "grpc" else {}))
        except Exception as exc:
            raise ClientError(f"Cannot read the config of `{model}` at {self.url}: {_message(exc)}") from None
        return ModelInfo.from_config(config["config"] if self.protocol == "grpc" else config)

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Send a uint8 [B, H, W, 3] batch as-is and return every output by name."""
        tc = _module(self.protocol)
        expected = (self.info.height, self.info.width, 3)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != expected:
            raise ClientError(f"Bad batch {batch.dtype}{list(batch.shape)} for `{self.info.name}`: expected uint8 "
                              f"[B, {', '.join(map(str, expected))}].")
        tensor = tc.InferInput(self.info.input_name, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(np.ascontiguousarray(batch))
        outputs = [tc.InferRequestedOutput(name) for name in self.info.output_names]
        try:
            response = self._client.infer(self.info.name, [tensor], outputs=outputs)
        except Exception as exc:
            raise ClientError(f"Inference on `{self.info.name}` at {self.url} failed: {_message(exc)}") from None
        if self.protocol == "grpc":
            self.last_wire_bytes = (batch.nbytes, response.get_response().ByteSize())
        return {name: response.as_numpy(name) for name in self.info.output_names}

    # -- image in, masks out --------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> tuple[np.ndarray, Letterbox]:
        return letterbox(load_image(image), self.info.height, self.info.width)

    def _run(self, image: ImageLike, task: str, other: str) -> tuple[dict[str, np.ndarray], Letterbox, float]:
        """Letterbox, infer (timed: the request only) and return outputs, geometry and latency in ms."""
        if self.info.task != task:
            raise ClientError(f"`{self.info.name}` does {self.info.task} segmentation: use {other}.")
        canvas, box = self.prepare(image)
        started = time.perf_counter()
        outputs = self.infer(canvas[None])
        return outputs, box, (time.perf_counter() - started) * 1e3

    def segment(self, image: ImageLike) -> SegmentationResult:
        """Semantic segmentation: the class-id mask at the image's original resolution."""
        outputs, box, latency = self._run(image, "semantic", "detect()")
        return SegmentationResult(unletterbox_mask(outputs["MASK"][0], box), self.info.class_names, latency)

    def detect(self, image: ImageLike) -> DetectionResult:
        """Instance segmentation: boxes, scores, labels and full-resolution boolean masks."""
        outputs, box, latency = self._run(image, "instance", "segment()")
        return detections_to_original(outputs, box, self.info.class_names, latency, self.mask_threshold)

    def __call__(self, image: ImageLike) -> SegmentationResult | DetectionResult:
        return self.segment(image) if self.info.task == "semantic" else self.detect(image)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def detections_to_original(outputs: dict[str, np.ndarray], box: Letterbox, class_names: tuple[str, ...],
                           latency_ms: float = 0.0, mask_threshold: float = 0.5) -> DetectionResult:
    """Padded instance outputs of batch item 0 -> a DetectionResult in original image coordinates."""
    n = int(outputs["NUM_DETECTIONS"][0].reshape(-1)[0])
    boxes = unletterbox_boxes(outputs["BOXES"][0][:n], box)
    masks = paste_masks(outputs["MASKS"][0][:n].astype(np.float32), boxes, box.original_height,
                        box.original_width, mask_threshold)
    return DetectionResult(boxes, outputs["SCORES"][0][:n].astype(np.float32),
                           outputs["LABELS"][0][:n].astype(np.int32), masks, class_names, latency_ms)


# -- tritonclient plumbing (imported lazily: `import client` stays cheap) ------------------------------------
def _module(protocol: str):
    if protocol == "grpc":
        import tritonclient.grpc as tc
    else:
        import tritonclient.http as tc
    return tc


def _message(exc: Exception) -> str:
    text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0]


def _connect(url: str, protocol: str, ready_timeout_s: float):
    tc = _module(protocol)
    try:
        if protocol == "grpc":
            client = tc.InferenceServerClient(url, channel_args=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ])
        else:
            client = tc.InferenceServerClient(url, connection_timeout=5.0, network_timeout=120.0)
    except Exception as exc:
        raise ClientError(f"Bad server URL `{url}`: {_message(exc)}") from None
    deadline = time.monotonic() + ready_timeout_s
    last = "no answer"
    while True:
        try:
            if client.is_server_ready():
                return client
            last = "server not ready"
        except Exception as exc:
            last = _message(exc)
        if time.monotonic() >= deadline:
            client.close()
            raise ClientError(f"Cannot reach Triton at {protocol}://{url} within {ready_timeout_s:g} s ({last}).")
        time.sleep(0.5)


def served_models(client, protocol: str) -> list[str]:
    """Names of the models the server reports READY."""
    index = client.get_model_repository_index(**({"as_json": True} if protocol == "grpc" else {}))
    entries = index.get("models", []) if protocol == "grpc" else index
    return [m["name"] for m in entries if m.get("state") == "READY"]
