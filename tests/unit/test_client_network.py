"""Deadlines and retries against real local sockets (issue #10 item 4): a server that accepts and never answers,
and a port where nothing listens. The real Triton cases (restart, TLS, headers) are in
tests/integration/test_client_against_triton.py."""

import socket
import threading
import time

import numpy as np
import pytest

from client import ClientError, Retry, Segmenter
from client.__main__ import main
from client.transport import Connection, check_headers
from support import free_port


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts every connection, reads what it is sent and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    held, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setblocking(False)
            held.append(conn)
            for c in held:
                try:
                    c.recv(1 << 16)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_ready_wait_against_a_silent_server_ends_at_the_timeout(silent_server, protocol):
    started = time.monotonic()
    with pytest.raises(ClientError, match=rf"Cannot reach Triton at {protocol}://{silent_server} within 1\.5 s"):
        Segmenter(silent_server, "unet", protocol=protocol, ready_timeout_s=1.5, timeout_s=1.5)
    assert 1.2 < time.monotonic() - started < 3.5


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_every_call_has_a_deadline(silent_server, protocol):
    """Metadata and inference calls on a connection that is up but never answers end after timeout_s, and a
    deadline is not retried (it would multiply the wait)."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    tc = grpcclient if protocol == "grpc" else httpclient
    connection = Connection(silent_server, protocol, timeout_s=1.0, retry=Retry(attempts=4, backoff_s=0.01))
    tensor = tc.InferInput("IMAGE", [1, 8, 8, 3], "UINT8")
    tensor.set_data_from_numpy(np.zeros((1, 8, 8, 3), np.uint8))
    calls = {"served_models": connection.served_models,
             "model_config": lambda: connection.model_config("unet"),
             "infer": lambda: connection.infer("unet", [tensor], [tc.InferRequestedOutput("MASK")])}
    try:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(ClientError, match=r"timed out after 1 s \(deadline"):
                call()
            assert 0.8 < time.monotonic() - started < 2.5, name
    finally:
        connection.close()


def test_cli_timeout_holds_against_a_silent_server(silent_server, capsys):
    started = time.monotonic()
    assert main(["segment", "x.png", "--url", silent_server, "--timeout", "2", "--out", "/tmp"]) == 1
    assert time.monotonic() - started < 4.0
    assert f"Cannot reach Triton at grpc://{silent_server} within 2 s" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_refused_calls_are_retried_with_backoff_and_say_how_often(protocol):
    url = f"127.0.0.1:{free_port()}"
    connection = Connection(url, protocol, timeout_s=5.0, retry=Retry(attempts=3, backoff_s=0.2, max_backoff_s=1.0))
    started = time.monotonic()
    try:
        with pytest.raises(ClientError, match=rf"Listing models at {protocol}://{url} failed after 3 attempts"):
            connection.served_models()
    finally:
        connection.close()
    elapsed = time.monotonic() - started
    # Two sleeps: 0.1..0.2 s then 0.2..0.4 s (equal jitter), and refusals are immediate.
    assert 0.3 <= elapsed < 3.0


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    retry = Retry(attempts=10, backoff_s=0.1, max_backoff_s=0.8)
    delays = [[retry.delay(k) for _ in range(200)] for k in range(6)]
    for k, ds in enumerate(delays):
        step = min(0.8, 0.1 * 2 ** k)
        assert step / 2 <= min(ds) and max(ds) <= step
        assert len(set(ds)) > 100  # jittered
    assert max(delays[5]) <= 0.8


@pytest.mark.parametrize("headers, ok", [
    ({"Authorization": "Bearer x"}, True), ({"segserve-admin-key": "s3cret"}, True),
    ({"bad key": "v"}, False), ({"k:": "v"}, False), ({"k": "two\nlines"}, False), ({"k": 3}, False),
])
def test_headers_are_checked(headers, ok):
    if ok:
        assert check_headers(headers) == headers
    else:
        with pytest.raises(ClientError, match=r"Bad header"):
            check_headers(headers)


def test_missing_tls_files_are_named(tmp_path):
    from client import TLS

    with pytest.raises(ClientError, match=r"Cannot read the TLS root certificates `.*ca\.pem`"):
        Connection("127.0.0.1:1", tls=TLS(root_certificates=tmp_path / "ca.pem"))
    with pytest.raises(ClientError, match=r"Mutual TLS needs both a client certificate and its private key"):
        Connection("127.0.0.1:1", tls=TLS(certificate_chain=tmp_path / "c.pem"))
