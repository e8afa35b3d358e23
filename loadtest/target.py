"""The server and model under test, read from the server itself through the client's ``Connection`` (every call
with a deadline).

The model's description comes from its served ``config.pbtxt`` (generated from the spec by ``python -m export``),
parsed by the client's own ``ModelInfo``; output byte counts use the spec's ``TensorSpec.nbytes``.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from client.api import ModelInfo
from client.errors import ClientError
from client.transport import Connection, Retry
from export.spec import TRITON_DTYPES, TensorSpec
from loadtest.errors import LoadTestError

CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Target:
    url: str
    info: ModelInfo
    server_version: str
    output_bytes: dict[str, int]  # per batch item, from the served dims and data types

    @property
    def model(self) -> str:
        return self.info.name

    @property
    def tensor_names(self) -> tuple[str, ...]:
        return (self.info.input_name, *self.info.output_names)

    @property
    def largest_output_bytes(self) -> int:
        return max(self.output_bytes.values())


def connect(url: str, ready_timeout_s: float = 15.0, headers: dict[str, str] | None = None) -> Connection:
    """The client's gRPC connection to a ready server (every call with a deadline of CALL_TIMEOUT_S and
    ``headers``; no retries: a load test reports what it finds), or LoadTestError naming the URL."""
    try:
        connection = Connection(url, "grpc", CALL_TIMEOUT_S, headers=headers, retry=Retry(attempts=1))
    except ClientError as exc:
        raise LoadTestError(str(exc)) from None
    try:
        connection.wait_ready(ready_timeout_s)
    except ClientError as exc:
        connection.close()
        raise LoadTestError(f"{exc} Start it (`make serve`) or pass the right URL=host:port.") from None
    return connection


def _served(connection: Connection) -> str:
    """The READY models for an error message (the repository index may be a restricted protocol)."""
    try:
        return ", ".join(sorted(connection.served_models())) or "none"
    except ClientError as exc:
        return f"unknown ({exc})"


def probe(url: str, model: str, ready_timeout_s: float = 15.0, headers: dict[str, str] | None = None) -> Target:
    """Check the server answers and serves ``model`` READY; describe it. ``headers`` go with every call."""
    connection = connect(url, ready_timeout_s, headers)
    try:
        if not connection.is_model_ready(model):
            raise LoadTestError(f"Model `{model}` is not served READY at {url}. Served: {_served(connection)}.")
        config = connection.model_config(model)
        version = connection.server_metadata().get("version", "?")
        info = ModelInfo.from_config(config)
    except ClientError as exc:
        raise LoadTestError(str(exc)) from None
    finally:
        connection.close()
    outputs = {}
    for out in map(TensorSpec.from_config, config["output"]):
        if out.dtype not in TRITON_DTYPES:
            raise LoadTestError(f"Output `{out.name}` of `{model}` has data type {out.dtype}; shared-memory sizing "
                                f"knows {', '.join(TRITON_DTYPES)}.")
        outputs[out.name] = out.nbytes
    return Target(url, info, f"Triton {version}", outputs)


def statistics(url: str, model: str, headers: dict[str, str] | None = None) -> dict[str, int]:
    """The server's cumulative request counters for ``model``: success and fail counts."""
    connection = connect(url, 5.0, headers)
    try:
        stats = connection.inference_statistics(model)
    except ClientError as exc:
        raise LoadTestError(str(exc)) from None
    finally:
        connection.close()
    success = fail = 0
    for entry in stats.get("model_stats", []):
        inference = entry.get("inference_stats", {})
        success += int(inference.get("success", {}).get("count", 0))
        fail += int(inference.get("fail", {}).get("count", 0))
    return {"success": success, "fail": fail}


def is_same_host(url: str) -> bool:
    """Whether ``url``'s host is this machine (loopback, or an address this host resolves to itself)."""
    host = url.rsplit(":", 1)[0].strip("[]") if ":" in url else url
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    if any(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        return True
    try:
        own = set(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        return False
    return bool(addresses & own)
