"""The wire: one Triton connection (gRPC or HTTP) where every call has a deadline, carries the caller's headers and
is retried with exponential backoff and jitter when the server is unavailable (refused, reset, restarting).

tritonclient is imported lazily so ``import client`` stays cheap. Deadlines: gRPC calls take ``client_timeout``
(tritonclient/grpc/_client.py); the HTTP client's ``connection_timeout``/``network_timeout`` bound every socket
operation (tritonclient/http/_client.py, geventhttpclient). Only failures that mean "nothing was processed" are
retried (gRPC UNAVAILABLE, a refused/reset/closed connection); a deadline is never retried, so a timeout holds.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from client.errors import ClientError, GaveUp

PROTOCOLS = ("grpc", "http")
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
MAX_MESSAGE_BYTES = 2**31 - 1  # the gRPC default (4 MB) is far below a batch of masks or PROBS
# gRPC reconnects a broken channel with exponential backoff up to 120 s by default; a server that restarts would
# then be refused for minutes. Cap it so retries see the server as soon as it is back (grpc core channel args
# grpc.initial_reconnect_backoff_ms / grpc.max_reconnect_backoff_ms, grpc/include/grpc/impl/channel_arg_names.h).
# grpc.min_reconnect_backoff_ms is left alone: it is also the connect timeout (20 s). While the channel waits to
# reconnect, calls fail at once with UNAVAILABLE, so retries must span more than this cap: the default Retry
# sleeps 1.9-3.75 s in all.
RECONNECT_BACKOFF_MS = 1000


@dataclass(frozen=True)
class TLS:
    """Transport security. gRPC: root certificates, client certificate and key (mutual TLS), and the name the
    server's certificate is checked against when it differs from the URL's host. HTTPS: the same files; the
    name override is sent as SNI and checked the same way."""

    root_certificates: str | Path | None = None  # PEM CA bundle; None: the system's roots
    certificate_chain: str | Path | None = None  # PEM client certificate (mutual TLS)
    private_key: str | Path | None = None  # PEM client key (mutual TLS)
    target_name: str | None = None  # expected server name, e.g. when connecting by IP

    def read(self, what: str) -> bytes | None:
        path = getattr(self, what)
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ClientError(f"Cannot read the TLS {what.replace('_', ' ')} `{path}`: {exc.strerror}.") from None

    def check(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ClientError("Mutual TLS needs both a client certificate and its private key (--client-cert and "
                              "--client-key).")
        for what in ("root_certificates", "certificate_chain", "private_key"):
            self.read(what)


@dataclass(frozen=True)
class Retry:
    """Bounded retries of idempotent calls: ``attempts`` in all, sleeping ``backoff_s * 2**k`` (capped at
    ``max_backoff_s``) with equal jitter between them."""

    attempts: int = 5
    backoff_s: float = 0.25
    max_backoff_s: float = 2.0

    def delay(self, attempt: int) -> float:
        step = min(self.max_backoff_s, self.backoff_s * 2 ** attempt)
        return step / 2 + random.uniform(0, step / 2)


def module(protocol: str):
    if protocol == "grpc":
        import tritonclient.grpc as tc
    else:
        import tritonclient.http as tc
    return tc


def message(exc: BaseException) -> str:
    text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return (text or type(exc).__name__).strip().splitlines()[0]


def _status(exc: BaseException) -> str:
    status = exc.status() if hasattr(exc, "status") and callable(exc.status) else None
    return str(status or "")


def is_deadline(exc: BaseException) -> bool:
    return "DEADLINE_EXCEEDED" in _status(exc) or isinstance(exc, TimeoutError) or type(exc).__name__ == "Timeout"


def is_retryable(exc: BaseException) -> bool:
    """Nothing reached the model: the server is down, restarting, or dropped the connection."""
    if "UNAVAILABLE" in _status(exc):
        return True
    if isinstance(exc, (ConnectionError, BrokenPipeError)):  # refused, reset, aborted (HTTP)
        return True
    return type(exc).__name__ in ("HTTPConnectionClosed", "ConnectionRefusedError")


def check_headers(headers: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if not isinstance(key, str) or not key.strip() or not isinstance(value, str) or any(
                c in key for c in " :\r\n") or any(c in value for c in "\r\n"):
            raise ClientError(f"Bad header {key!r}: {value!r}: expected a name without spaces or colons and a "
                              "one-line text value, e.g. {'Authorization': 'Bearer TOKEN'}.")
        out[key] = value
    return out


@dataclass
class Connection:
    """A Triton client with deadlines, headers and retries on every call (``url`` None: the protocol's local
    default, DEFAULT_URLS; ``tls`` True: a ``TLS()`` with the system's roots; ``retry`` None: ``Retry()``)."""

    url: str | None
    protocol: str = "grpc"
    timeout_s: float = 30.0
    tls: TLS | bool | None = None  # a TLS or None after __post_init__
    headers: dict[str, str] | None = None  # checked and copied into a dict of its own
    retry: Retry | None = None  # a Retry after __post_init__

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ClientError(f"Unknown protocol `{self.protocol}`. Available: {', '.join(PROTOCOLS)}.")
        self.url = self.url or DEFAULT_URLS[self.protocol]
        if not self.timeout_s > 0:
            raise ClientError(f"Bad timeout {self.timeout_s!r}: expected a number of seconds > 0.")
        self.retry = self.retry or Retry()
        if self.retry.attempts < 1:
            raise ClientError(f"Bad retry attempts {self.retry.attempts}: expected at least 1.")
        self.headers = check_headers(self.headers)
        if self.protocol == "grpc":  # gRPC metadata keys are lower-case (HTTP/2)
            self.headers = {k.lower(): v for k, v in self.headers.items()}
        self.tls = TLS() if self.tls is True else (self.tls or None)
        if self.tls is not None:
            self.tls.check()
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self.client  # noqa: B018 - fails early on a malformed URL

    @property
    def display(self) -> str:
        scheme = {"grpc": "grpcs" if self.tls else "grpc", "http": "https" if self.tls else "http"}[self.protocol]
        return f"{scheme}://{self.url}"

    # -- tritonclient objects ----------------------------------------------------------------------------------
    def _make(self, timeout_s: float):
        tc = module(self.protocol)
        try:
            if self.protocol == "grpc":
                args = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                        ("grpc.initial_reconnect_backoff_ms", 100),
                        ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS)]
                if self.tls is None:
                    return tc.InferenceServerClient(self.url, channel_args=args)
                import grpc

                creds = grpc.ssl_channel_credentials(root_certificates=self.tls.read("root_certificates"),
                                                     private_key=self.tls.read("private_key"),
                                                     certificate_chain=self.tls.read("certificate_chain"))
                if self.tls.target_name:
                    args.append(("grpc.ssl_target_name_override", self.tls.target_name))
                return tc.InferenceServerClient(self.url, creds=creds, channel_args=args)
            kwargs: dict[str, Any] = {"connection_timeout": timeout_s, "network_timeout": timeout_s}
            if self.tls is not None:
                options = {k: str(v) for k, v in (("ca_certs", self.tls.root_certificates),
                                                  ("certfile", self.tls.certificate_chain),
                                                  ("keyfile", self.tls.private_key),
                                                  ("server_hostname", self.tls.target_name)) if v}
                kwargs.update(ssl=True, ssl_options=options)
            return tc.InferenceServerClient(self.url, **kwargs)
        except ClientError:
            raise
        except Exception as exc:
            raise ClientError(f"Bad server URL `{self.url}`: {message(exc)}") from None

    @property
    def client(self):
        """gRPC: one thread-safe channel. HTTP: one client per thread (the gevent-based client is not
        thread-safe)."""
        if self.protocol == "grpc" and self._clients:
            return self._clients[0]
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._make(self.timeout_s)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # closing an HTTP client made by another thread may complain; nothing to lose
                pass
        self._local = threading.local()

    # -- calls ---------------------------------------------------------------------------------------------
    def _kwargs(self, timeout_s: float | None = None, as_json: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self.headers or None}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = timeout_s or self.timeout_s
            if as_json:
                kwargs["as_json"] = True
        return kwargs

    def call(self, what: str, fn: Callable[[Any, float], Any]) -> Any:
        """Run ``fn(client, seconds_left)`` with retries while the server is unavailable. The whole call, retries
        included, ends within ``timeout_s`` (HTTP: each attempt's socket timeouts are ``timeout_s``); ``what``
        names the call in the final error, with the number of attempts."""
        started = time.monotonic()
        deadline = started + self.timeout_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(self.client, max(0.001, deadline - time.monotonic()))
            except Exception as exc:
                if is_deadline(exc):
                    raise GaveUp(f"{what} at {self.display} timed out after {self.timeout_s:g} s "
                                 f"(deadline; raise it with timeout_s / --timeout).") from None
                pause = self.retry.delay(attempt - 1)
                if not is_retryable(exc) or attempt >= self.retry.attempts or \
                        time.monotonic() + pause >= deadline:
                    if attempt == 1:
                        raise ClientError(f"{what} at {self.display} failed: {message(exc)}") from None
                    raise GaveUp(f"{what} at {self.display} failed after {attempt} attempts in "
                                 f"{time.monotonic() - started:.1f} s: {message(exc)}") from None
            time.sleep(pause)

    def wait_ready(self, ready_timeout_s: float) -> None:
        """Poll server readiness until ``ready_timeout_s`` has passed; no probe outlives that budget."""
        deadline = time.monotonic() + ready_timeout_s
        last = "no answer"
        while True:
            remaining = deadline - time.monotonic()
            probe_timeout = max(0.05, min(self.timeout_s, remaining))
            try:
                if self.protocol == "grpc":
                    ready = self.client.is_server_ready(**self._kwargs(probe_timeout))
                else:  # a fresh client whose socket timeouts fit the remaining budget
                    probe = self._make(probe_timeout)
                    try:
                        ready = probe.is_server_ready(headers=self.headers or None)
                    finally:
                        probe.close()
                if ready:
                    return
                last = "server not ready"
            except Exception as exc:
                last = "no answer within the deadline" if is_deadline(exc) else message(exc)
            if time.monotonic() + 0.2 >= deadline:
                raise ClientError(f"Cannot reach Triton at {self.display} within {ready_timeout_s:g} s ({last}).")
            time.sleep(0.2)

    def is_model_ready(self, name: str) -> bool:
        """Whether the server reports ``name`` ready. Triton answers an unknown model with an error on some
        protocols: that is False; a deadline, or a server still unavailable after the retries, raises."""
        try:
            return self.call(f"Checking `{name}`", lambda c, left: c.is_model_ready(name, **self._kwargs(left)))
        except GaveUp:
            raise
        except ClientError:
            return False

    def served_models(self) -> list[str]:
        """Names of the models the server reports READY."""
        index = self.call("Listing models",
                          lambda c, left: c.get_model_repository_index(**self._kwargs(left, as_json=True)))
        entries = index.get("models", []) if self.protocol == "grpc" else index
        return [m["name"] for m in entries if m.get("state") == "READY"]

    def model_config(self, name: str) -> dict[str, Any]:
        config = self.call(f"Reading the config of `{name}`",
                           lambda c, left: c.get_model_config(name, **self._kwargs(left, as_json=True)))
        return config["config"] if self.protocol == "grpc" else config

    def server_metadata(self) -> dict[str, Any]:
        return self.call("Reading the server metadata",
                         lambda c, left: c.get_server_metadata(**self._kwargs(left, as_json=True)))

    def inference_statistics(self, name: str) -> dict[str, Any]:
        return self.call(f"Reading the statistics of `{name}`",
                         lambda c, left: c.get_inference_statistics(name, **self._kwargs(left, as_json=True)))

    def infer(self, model: str, inputs: list, outputs: list):
        return self.call(f"Inference on `{model}`",
                         lambda c, left: c.infer(model, inputs, outputs=outputs, **self._kwargs(left)))
