"""Issue #13: faults injected into the real tritonserver (2.51, CPU) that `serve` must survive or report.

Each test starts its own server on free loopback ports from a two-model repository of the small test exports,
bounds every wait, and stops every process it started (the fixtures and `finally` blocks kill what is left)."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serve.security import MAX_REQUEST_BYTES
from support import ROOT, TOOLS, copy_repository, free_port

pytestmark = pytest.mark.integration

if not (TOOLS / "triton" / ".complete").exists():
    pytest.skip("tritonserver not fetched: run `make tools`", allow_module_level=True)

MODELS = ("deeplabv3_mobilenet", "unet")


@pytest.fixture(scope="module")
def repo(exported, tmp_path_factory) -> Path:
    """deeplabv3_mobilenet and unet from the session's small exports (hard links: no copy of the ONNX files)."""
    out = tmp_path_factory.mktemp("faults") / "model_repository"
    for name in MODELS:
        shutil.copytree(exported["_repository"] / name, out / name, copy_function=os.link)
    return out


def ports() -> list[int]:
    return [free_port(), free_port(), free_port()]


def infer(client, model="unet", batch=1, timeout_s=30.0):
    import tritonclient.grpc as grpcclient

    image = np.zeros((batch, 128, 128, 3), np.uint8)
    tensor = grpcclient.InferInput("IMAGE", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    return client.infer(model, [tensor], client_timeout=timeout_s).as_numpy("MASK")


def start_server(repo: Path, tmp_path: Path, **kwargs):
    from serve.server import ServerConfig, TritonServer

    http, grpc, metrics = ports()
    config = ServerConfig(repo, http_port=http, grpc_port=grpc, metrics_port=metrics, **kwargs)
    server = TritonServer(config, log_path=tmp_path / "tritonserver.log")
    server.start()
    try:
        server.wait_ready(120)
    except BaseException:
        server.stop(5)
        raise
    return server


class Serve:
    """`python -m serve` in a subprocess; its stdout and stderr lines are collected by threads."""

    def __init__(self, repo: Path, tmp_path: Path, *args: str) -> None:
        self.ports = ports()
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serve", "--repository", str(repo), "--http-port", str(self.ports[0]),
             "--grpc-port", str(self.ports[1]), "--metrics-port", str(self.ports[2]),
             "--log", str(tmp_path / "tritonserver.log"), "--watch-interval", "0.5", *args],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name, stream) -> None:
        for line in stream:
            self.lines.put((name, line.rstrip("\n")))

    def wait_for(self, text: str, timeout_s: float = 120.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                name, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append((name, line))
            if text in line:
                return line
        raise AssertionError(f"`{text}` not printed within {timeout_s} s; printed: {self.seen}")

    def stderr(self, at_least: int = 0, timeout_s: float = 10.0) -> list[str]:
        """The stderr lines so far, waiting up to ``timeout_s`` for ``at_least`` of them (the streams are read by
        separate threads, so a stderr line printed before a stdout line may arrive after it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            while not self.lines.empty():
                self.seen.append(self.lines.get())
            err = [line for name, line in self.seen if name == "err"]
            if len(err) >= at_least or time.monotonic() > deadline:
                return err
            time.sleep(0.1)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports[1]}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def server_pid(grpc_port: int) -> int:
    out = subprocess.run(["pgrep", "-f", f"tritonserver .*--grpc-port={grpc_port}( |$)"], capture_output=True,
                         text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


# -- item 1: shared memory and the repository API need the key ---------------------------------------------------

def test_shared_memory_registration_needs_the_key(repo, tmp_path):
    """Without the key a local process could register a python-backend stub's own region and have Triton write
    into it (the stub died, the model hung while reported READY). Now both protocols refuse it; with the key the
    same call is accepted."""
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient
    import tritonclient.utils.shared_memory as shm

    from serve.security import admin_headers

    server = start_server(repo, tmp_path)
    region, clients = None, {}
    try:
        stub_region = next(iter(server.stubs.values())).region  # the attack of the issue: a stub's own region
        name = f"segserve_test_{os.getpid()}"
        region = shm.create_shared_memory_region(name, f"/{name}", 64)
        clients = {"grpc": grpcclient.InferenceServerClient(server.grpc_url),
                   "http": httpclient.InferenceServerClient(server.http_url)}
        refused = {"grpc": r"This protocol is restricted, expecting header 'triton-grpc-protocol-segserve-admin-key'",
                   "http": r"This API is restricted, expecting header 'segserve-admin-key'"}
        for protocol, client in clients.items():
            for key in (stub_region, f"/{name}"):
                with pytest.raises(Exception, match=refused[protocol]):
                    client.register_system_shared_memory("probe", key, 64)
            with pytest.raises(Exception, match=refused[protocol]):
                client.get_model_repository_index()
            with pytest.raises(Exception, match=refused[protocol]):
                client.unload_model("unet")
            headers = admin_headers(server.config.admin_key, protocol)
            client.register_system_shared_memory(f"ok_{protocol}", f"/{name}", 64, headers=headers)
            status = client.get_system_shared_memory_status(headers=headers)
            assert f"ok_{protocol}" in str(status)
            client.unregister_system_shared_memory(f"ok_{protocol}", headers=headers)
        assert infer(clients["grpc"]).shape == (1, 128, 128)  # inference stays open
    finally:
        for client in clients.values():
            client.close()  # an open HTTP keep-alive connection holds Triton's shutdown for its whole exit timeout
        if region is not None:
            shm.destroy_shared_memory_region(region)
        server.stop()


# -- item 3: a dead python-backend stub is noticed ----------------------------------------------------------------

def test_a_killed_stub_is_detected_and_the_server_restarted_then_serve_exits_naming_the_model(repo, tmp_path):
    import tritonclient.grpc as grpcclient

    serve = Serve(repo, tmp_path, "--restarts", "1")
    try:
        serve.wait_for("Triton ready")
        client = grpcclient.InferenceServerClient(serve.grpc_url)
        assert infer(client).shape == (1, 128, 128)
        for round_ in range(2):
            from serve.procs import stubs_of

            stub = next(s for s in stubs_of(server_pid(serve.ports[1])) if s.model == "unet")
            os.kill(stub.pid, signal.SIGKILL)
            if round_ == 0:
                line = serve.wait_for("restarting tritonserver", 30)
                assert line == (f"error: model `unet`: its python backend stub (pid {stub.pid}) died; Triton would "
                                "fail every request to it while still reporting it ready: restarting tritonserver "
                                "(0 restart(s) left)")
                serve.wait_for("Triton ready")
                assert infer(client).shape == (1, 128, 128)  # the same client, answered by the new server
        assert serve.proc.wait(60) == 1
        time.sleep(0.5)  # the reader threads drain the pipes
        assert serve.stderr()[-1] == (f"error: model `unet`: its python backend stub (pid {stub.pid}) died; Triton "
                                      "would fail every request to it while still reporting it ready")
    finally:
        serve.close()


# -- items 3 and 4: the server killed under load; orphans and /dev/shm regions -------------------------------------

def load(client_factory, stop: threading.Event, results: list, threads: int = 6, **kwargs) -> list[threading.Thread]:
    def worker():
        client = client_factory()
        while not stop.is_set():
            started = time.monotonic()
            try:
                infer(client, batch=4, **kwargs)
                results.append((started, time.monotonic(), None))
            except Exception as exc:
                results.append((started, time.monotonic(), str(exc)))

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers


def test_server_killed_mid_load_fails_calls_fast_cleans_up_and_a_new_server_answers_the_same_client(repo, tmp_path):
    import tritonclient.grpc as grpcclient

    from serve import procs
    from serve.server import TritonServer

    server = start_server(repo, tmp_path)
    try:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        stubs = list(server.stubs.values())
        regions = {s.region for s in stubs}
        assert len(stubs) == 2 and all((procs.SHM_DIR / r).exists() for r in regions)
        stop, results = threading.Event(), []
        workers = load(lambda: client, stop, results)
        time.sleep(2.0)
        killed_at = time.monotonic()
        server.process.kill()
        time.sleep(3.0)
        stop.set()
        for w in workers:
            w.join(35)
        in_flight = [r for r in results if r[0] < killed_at < r[1]]
        assert in_flight, "no request was in flight when the server was killed"
        for started, ended, error in in_flight:
            assert error is not None and "\n" not in error
            assert ended - killed_at < 5.0, f"an in-flight call took {ended - killed_at:.1f} s to fail"
        assert server.check().startswith("tritonserver was killed by SIGKILL")
        server.stop()
        assert procs.group_members(server.pgid) == [], "orphaned python-backend stubs"
        assert not any((procs.SHM_DIR / r).exists() for r in regions), "stale /dev/shm regions"

        again = TritonServer(server.config, log_path=tmp_path / "again.log").start()  # same ports
        try:
            again.wait_ready(120)
            deadline = time.monotonic() + 30
            while True:  # gRPC reconnects with backoff: the same client object, no new channel
                try:
                    assert infer(client, timeout_s=5).shape == (1, 128, 128)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            again.stop()
    finally:
        server.stop(5)


def test_sigterm_under_load_completes_every_in_flight_request(repo, tmp_path):
    import tritonclient.grpc as grpcclient

    server = start_server(repo, tmp_path)
    try:
        stop, results = threading.Event(), []
        workers = load(lambda: grpcclient.InferenceServerClient(server.grpc_url), stop, results)
        time.sleep(2.0)
        signalled_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(40) == 0
        stop.set()
        for w in workers:
            w.join(35)
        in_flight = [r for r in results if r[0] < signalled_at < r[1]]
        assert in_flight, "no request was in flight at SIGTERM"
        assert [r[2] for r in in_flight if r[2] is not None] == []
    finally:
        server.stop(5)


# -- item 5: a corrupt model is named with its cause; the bad-model policy ------------------------------------------

@pytest.fixture
def corrupt_repo(repo, tmp_path) -> Path:
    out = copy_repository(repo, tmp_path / "model_repository")
    onnx = out / "unet" / "1" / "model.onnx"
    onnx.unlink()
    onnx.write_bytes(b"this is not an ONNX file" * 100)
    # A model that loads but whose largest request (max batch 64 x 1024x1024x3 B = 192 MiB) is above the limit.
    big = out / "oversized"
    shutil.copytree(out / "deeplabv3_mobilenet", big, copy_function=os.link)
    config = (big / "config.pbtxt").read_text()
    (big / "config.pbtxt").unlink()
    (big / "config.pbtxt").write_text(config.replace('name: "deeplabv3_mobilenet"', 'name: "oversized"')
                                      .replace("max_batch_size: 4", "max_batch_size: 64")
                                      .replace("dims: 128", "dims: 1024", 2))
    return out


def test_a_corrupt_model_stops_serve_with_the_model_and_the_cause(corrupt_repo, tmp_path):
    serve = Serve(corrupt_repo, tmp_path)
    try:
        assert serve.proc.wait(120) == 1
        time.sleep(0.5)  # the reader threads drain the pipes
        err = serve.stderr(at_least=1)
        assert len(err) == 1, err
        assert err[0].startswith("error: tritonserver exited with code 1 before it was ready: model `unet` failed "
                                 "to load: ")
        assert f"Load model from {corrupt_repo.resolve()}/unet/1/model.onnx failed:Protobuf parsing failed." in err[0]
    finally:
        serve.close()


def test_keep_going_reports_the_corrupt_model_and_serves_the_others(corrupt_repo, tmp_path):
    import tritonclient.grpc as grpcclient

    serve = Serve(corrupt_repo, tmp_path, "--keep-going")
    try:
        serve.wait_for("Triton ready")
        warning = [line for line in serve.stderr(at_least=2) if line.startswith("warning:")]
        assert len(warning) == 2, warning
        assert warning[0].startswith("warning: model `unet` failed to load and is not served (--keep-going): "
                                     "Internal: InvalidProtobuf")
        assert warning[1] == ("warning: model `oversized` accepts requests of 192.0 MiB, above the documented "
                              f"{MAX_REQUEST_BYTES // 2**20} MiB "
                              "request limit (README, 'Serve locally'): export it with a smaller --max-batch-size "
                              "or --size")
        client = grpcclient.InferenceServerClient(serve.grpc_url)
        assert infer(client, "deeplabv3_mobilenet").shape == (1, 128, 128)
        assert not client.is_model_ready("unet")
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(60) == 0
    finally:
        serve.close()


# -- item 6: ports -------------------------------------------------------------------------------------------------

def test_a_taken_port_is_one_line_and_exit_1(repo, tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "serve", "--repository", str(repo), "--grpc-port", str(port),
                               "--http-port", str(free_port()), "--metrics-port", str(free_port())],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 1
    assert proc.stderr == (f"error: Port {port} (grpc) on 127.0.0.1 is already in use: stop what holds it or pass "
                           "--grpc-port.\n")
