"""A thin Triton client for the segserve models: image in, masks out (numpy + pillow + tritonclient; no torch).

    from client import Segmenter
    seg = Segmenter("localhost:8001", "deeplabv3")     # reads the model's spec from the server
    result = seg.segment("street.jpg")                  # class-id mask at the image's original resolution
    for result in seg.map(paths, concurrency=4): ...    # many images in flight, results in order

Everything the client needs to know about a model (input size, tensor names, task, class names) comes from the
served ``config.pbtxt``, which ``python -m export`` generates from the model spec.
"""

from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from client.errors import ClientError
from client.preprocess import DEFAULT_MAX_PIXELS, ImageLike, Letterbox, prepare
from client.results import DetectionResult, SegmentationResult, detections_to_original, segmentation_from_outputs
from client.transport import TLS, Connection, Retry, module

__all__ = ["TLS", "DetectionResult", "ModelInfo", "Retry", "SegmentationResult", "Segmenter", "detections_to_original",
           "ordered_map"]

Result = SegmentationResult | DetectionResult
T = TypeVar("T")
R = TypeVar("R")


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

    @property
    def batch_limit(self) -> int:
        """Most images in one request (a model without a batch dimension takes one)."""
        return max(1, self.max_batch_size)

    @property
    def max_request_bytes(self) -> int:
        """The largest valid request: a full batch of uint8 H x W x 3 images."""
        return self.batch_limit * self.height * self.width * 3


def ordered_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int, *,
                return_exceptions: bool = False) -> Iterator[R | ClientError]:
    """``fn`` over ``items`` in a pool of ``concurrency`` threads, yielding results in input order. At most
    2 x concurrency items are read ahead. With ``return_exceptions`` a ClientError is yielded in place of its
    result (other exceptions are bugs and propagate)."""
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ClientError(f"Bad concurrency {concurrency!r}: expected an integer >= 1.")
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="segserve")
    window: deque = deque()
    try:
        def take():
            future = window.popleft()
            try:
                return future.result()
            except ClientError as exc:
                if return_exceptions:
                    return exc
                raise

        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= 2 * concurrency:
                yield take()
        while window:
            yield take()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Segmenter:
    """One served segserve model behind a Triton URL (gRPC by default, HTTP optional).

    Every call has a deadline (``timeout_s``), carries ``headers`` and is retried per ``retry`` while the server
    is unavailable; ``tls`` (a ``TLS`` or True for the system's roots) encrypts the connection."""

    def __init__(self, url: str | None = None, model: str = "deeplabv3_mobilenet", *, protocol: str = "grpc",
                 ready_timeout_s: float = 30.0, timeout_s: float = 30.0, mask_threshold: float = 0.5,
                 tls: TLS | bool | None = None, headers: dict[str, str] | None = None, retry: Retry | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.connection = Connection(url, protocol, timeout_s, tls, headers, retry)
        self.mask_threshold = mask_threshold
        self.max_pixels = max_pixels
        self.last_wire_bytes: tuple[int, int] | None = None  # (request tensor bytes, gRPC response message bytes)
        try:
            self.connection.wait_ready(ready_timeout_s)
            self.info = self._model_info(model)
        except BaseException:
            self.connection.close()
            raise

    # -- server ---------------------------------------------------------------------------------------------
    def _model_info(self, model: str) -> ModelInfo:
        """The model's config, read with the health and model-config APIs only: the repository index is often
        restricted (serve and the chart keep it behind an admin key) and is read only to name the served models
        when ``model`` is not ready."""
        connection = self.connection
        if not connection.is_model_ready(model):
            try:
                served = connection.served_models()
            except ClientError as exc:
                raise ClientError(f"Model `{model}` is not ready at {self.protocol}://{self.url}, and the list of "
                                  f"served models is not readable ({exc}).") from None
            listing = ", ".join(sorted(served)) or "none"
            raise ClientError(f"Unknown model `{model}` at {self.protocol}://{self.url}. Served: {listing}.")
        return ModelInfo.from_config(connection.model_config(model))

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Send a uint8 [B, H, W, 3] batch as-is and return every output by name."""
        tc = module(self.protocol)
        info = self.info
        expected = (info.height, info.width, 3)
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.ndim != 4 \
                or batch.shape[1:] != expected or batch.shape[0] < 1:
            what = f"{batch.dtype}{list(batch.shape)}" if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ClientError(f"Bad batch {what} for `{info.name}`: expected uint8 "
                              f"[B, {', '.join(map(str, expected))}] with 1 <= B <= {info.batch_limit}.")
        if batch.nbytes > info.max_request_bytes:
            raise ClientError(f"Request of {batch.nbytes:,} bytes ({batch.shape[0]} images) is above `{info.name}`'s "
                              f"limit of {info.max_request_bytes:,} bytes ({info.batch_limit} x "
                              f"{info.height}x{info.width}x3): send at most {info.batch_limit} images per request.")
        tensor = tc.InferInput(info.input_name, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(np.ascontiguousarray(batch))
        outputs = [tc.InferRequestedOutput(name) for name in info.output_names]
        response = self.connection.infer(info.name, [tensor], outputs)
        if self.protocol == "grpc":
            self.last_wire_bytes = (batch.nbytes, response.get_response().ByteSize())
        return {name: response.as_numpy(name) for name in info.output_names}

    @property
    def protocol(self) -> str:
        return self.connection.protocol

    @property
    def url(self) -> str:
        """The server address (the protocol's local default when none was given)."""
        return self.connection.url

    # -- image in, masks out --------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> tuple[np.ndarray, Letterbox]:
        """The model canvas ``infer`` takes for ``image``, and its letterbox geometry."""
        canvas, box, _ = self._prepare(image)
        return canvas, box

    def _check_task(self, task: str, other: str) -> None:
        if self.info.task != task:
            raise ClientError(f"`{self.info.name}` does {self.info.task} segmentation: use {other}.")

    def _prepare(self, image: ImageLike) -> tuple[np.ndarray, Letterbox, int]:
        return prepare(image, self.info.height, self.info.width, self.max_pixels)

    def _post(self, outputs: dict[str, np.ndarray], box: Letterbox, frames: int, latency: float,
              index: int) -> Result:
        if self.info.task == "semantic":
            return segmentation_from_outputs(outputs, box, self.info.class_names, latency, frames, index)
        return detections_to_original(outputs, box, self.info.class_names, latency, self.mask_threshold, frames,
                                      index)

    def _finish(self, prepared: list[tuple[np.ndarray, Letterbox, int]]) -> list[Result]:
        """Infer prepared images (at most the model's max batch) in one request and post-process each."""
        begun = time.perf_counter()
        outputs = self.infer(np.stack([canvas for canvas, _, _ in prepared]))
        latency = (time.perf_counter() - begun) * 1e3
        return [self._post(outputs, box, frames, latency, i) for i, (_, box, frames) in enumerate(prepared)]

    def _results(self, images: Sequence[ImageLike]) -> list[Result]:
        """Letterbox, infer in batches of at most the model's max batch, and post-process each image."""
        prepared = [self._prepare(image) for image in images]
        step = self.info.batch_limit
        return [r for start in range(0, len(prepared), step) for r in self._finish(prepared[start:start + step])]

    def segment(self, image: ImageLike | list[ImageLike] | tuple[ImageLike, ...]
                ) -> SegmentationResult | list[SegmentationResult]:
        """Semantic segmentation: the class-id mask at the image's original resolution. A list or tuple of images
        gives a list of results, sent in batches of at most the model's max batch size."""
        self._check_task("semantic", "detect()")
        if isinstance(image, (list, tuple)):
            return self._results(image)  # type: ignore[return-value]
        return self._results([image])[0]  # type: ignore[return-value]

    def detect(self, image: ImageLike | list[ImageLike] | tuple[ImageLike, ...]
               ) -> DetectionResult | list[DetectionResult]:
        """Instance segmentation: boxes, scores, labels and masks kept in their boxes (``full_masks()`` pastes
        them). A list or tuple of images gives one result per image, each cut at its own NUM_DETECTIONS."""
        self._check_task("instance", "segment()")
        if isinstance(image, (list, tuple)):
            return self._results(image)  # type: ignore[return-value]
        return self._results([image])[0]  # type: ignore[return-value]

    def __call__(self, image: ImageLike) -> Result:
        return self._results([image])[0]

    def map(self, images: Iterable[ImageLike], concurrency: int = 4, *,
            return_exceptions: bool = False) -> Iterator[Result | ClientError]:
        """Segment many images with ``concurrency`` requests in flight, yielding results in input order.

        Two thread pools form a pipeline: ``concurrency`` threads decode and letterbox the next images while
        ``concurrency`` others each keep one request in flight and post-process its answer, so the server (and
        its dynamic batcher) always has ``concurrency`` requests. At most 2 x concurrency images are read ahead.
        With ``return_exceptions`` a bad image yields its ClientError and the rest go on."""
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ClientError(f"Bad concurrency {concurrency!r}: expected an integer >= 1.")
        decoders = ThreadPoolExecutor(concurrency, thread_name_prefix="segserve-decode")
        try:
            prepared = (decoders.submit(self._prepare, image) for image in images)
            yield from ordered_map(lambda future: self._finish([future.result()])[0], prepared, concurrency,
                                   return_exceptions=return_exceptions)
        finally:
            decoders.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
