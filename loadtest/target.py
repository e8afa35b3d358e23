"""The server and model under test, read from the server itself (every call with a deadline).

The model's description comes from its served ``config.pbtxt`` (generated from the spec by ``python -m export``),
parsed by the client's own ``ModelInfo``; output byte counts use the spec's ``TensorSpec.nbytes``.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

from client.api import ModelInfo
from client.errors import ClientError
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


def _message(exc: Exception) -> str:
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0]


def connect(url: str, ready_timeout_s: float = 15.0, headers: dict[str, str] | None = None):
    """A gRPC client to a ready server, or LoadTestError naming the URL."""
    import tritonclient.grpc as grpcclient

    try:
        client = grpcclient.InferenceServerClient(url)
    except Exception as exc:
        raise LoadTestError(f"Bad server URL `{url}`: {_message(exc)}") from None
    deadline = time.monotonic() + ready_timeout_s
    last = "no answer"
    while True:
        try:
            if client.is_server_ready(headers=headers, client_timeout=CALL_TIMEOUT_S):
                return client
            last = "server not ready"
        except Exception as exc:
            last = _message(exc)
        if time.monotonic() >= deadline:
            client.close()
            raise LoadTestError(f"Cannot reach Triton at grpc://{url} within {ready_timeout_s:g} s ({last}): "
                                "start it (`make serve`) or pass the right URL=host:port.")
        time.sleep(0.5)


def _served(client, headers: dict[str, str] | None) -> str:
    """The READY models for an error message (the repository index may be a restricted protocol)."""
    try:
        index = client.get_model_repository_index(headers=headers, as_json=True, client_timeout=CALL_TIMEOUT_S)
    except Exception as exc:
        return f"unknown ({_message(exc)})"
    return ", ".join(sorted(m["name"] for m in index.get("models", []) if m.get("state") == "READY")) or "none"


def probe(url: str, model: str, ready_timeout_s: float = 15.0, headers: dict[str, str] | None = None) -> Target:
    """Check the server answers and serves ``model`` READY; describe it. ``headers`` go with every call."""
    client = connect(url, ready_timeout_s, headers)
    kw = {"headers": headers, "client_timeout": CALL_TIMEOUT_S}
    try:
        try:
            ready = client.is_model_ready(model, **kw)
        except Exception:
            ready = False
        if not ready:
            raise LoadTestError(f"Model `{model}` is not served READY at {url}. Served: {_served(client, headers)}.")
        config = client.get_model_config(model, as_json=True, **kw)["config"]
        version = client.get_server_metadata(as_json=True, **kw).get("version", "?")
    except LoadTestError:
        raise
    except Exception as exc:
        raise LoadTestError(f"Cannot read `{model}` from {url}: {_message(exc)}") from None
    finally:
        client.close()
    try:
        info = ModelInfo.from_config(config)
    except ClientError as exc:
        raise LoadTestError(str(exc)) from None
    outputs = {}
    for out in config["output"]:
        dtype = out["data_type"].removeprefix("TYPE_")
        if dtype not in TRITON_DTYPES:
            raise LoadTestError(f"Output `{out['name']}` of `{model}` has data type {dtype}; shared-memory sizing "
                                f"knows {', '.join(TRITON_DTYPES)}.")
        outputs[out["name"]] = TensorSpec(out["name"], dtype, tuple(int(d) for d in out["dims"])).nbytes
    return Target(url, info, f"Triton {version}", outputs)


def statistics(url: str, model: str, headers: dict[str, str] | None = None) -> dict[str, int]:
    """The server's cumulative request counters for ``model``: success and fail counts."""
    client = connect(url, 5.0, headers)
    try:
        stats = client.get_inference_statistics(model, headers=headers, as_json=True, client_timeout=CALL_TIMEOUT_S)
    except Exception as exc:
        raise LoadTestError(f"Cannot read statistics of `{model}` from {url}: {_message(exc)}") from None
    finally:
        client.close()
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
