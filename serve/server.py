"""Start, watch and stop a real local ``tritonserver`` (the CPU build from the nvidia-pytriton wheel).

The argv is built from a typed object (no shell). The server runs in its own process group and dies with its parent
(``PR_SET_PDEATHSIG``); it is stopped with SIGTERM (in-flight requests complete), then SIGKILL after a grace period,
and whatever is left of its group (orphaned python-backend stubs) is killed and their /dev/shm regions removed.
Its log goes on to the terminal or a file, and a failed start names the model and the cause from it.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from export.layout import tools_dir
from export.spec import TRITON_DTYPES, TensorSpec
from serve import procs
from serve.logs import LogPump
from serve.security import (ADMIN_KEY_ENV, ADMIN_KEY_HEADER, RESTRICTED_APIS, admin_headers, admin_key, is_loopback,
                            request_bytes)


class ServeError(Exception):
    """A known user error: port taken, binary missing, a model that does not load, server not ready in time."""


DEFAULT_TOOLS = tools_dir()
KEY_CHARS = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's pick; another process may still take it before use)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerConfig:
    repository: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    host: str = "127.0.0.1"
    tools: Path = DEFAULT_TOOLS
    model_control_mode: str = "none"
    log_verbose: int = 0
    strict_readiness: bool = True
    exit_timeout_s: int = 20
    # One model that fails to load stops the server (the default), or is reported while the others serve.
    exit_on_error: bool = True
    # Listening beyond loopback must be asked for: see serve.security.EXPOSED_WARNING.
    expose: bool = False
    restricted_apis: tuple[str, ...] = RESTRICTED_APIS
    admin_key: str = field(default_factory=admin_key, repr=False)
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def on_free_ports(cls, repository: Path, **fields) -> "ServerConfig":
        """A config serving ``repository`` on three free loopback ports (benchmarks, tests, the soak run)."""
        return cls(repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(), **fields)

    @property
    def admin_key_from_env(self) -> bool:
        return os.environ.get(ADMIN_KEY_ENV, "") == self.admin_key

    def __post_init__(self) -> None:
        for name, port in self.ports.items():
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ServeError(f"Bad {name} port {port}: use 1..65535.")
        if len(set(self.ports.values())) != len(self.ports):
            raise ServeError(f"The HTTP, gRPC and metrics ports must differ; got {self.http_port}, {self.grpc_port}, "
                             f"{self.metrics_port}.")
        if not self.expose and not is_loopback(self.host):
            raise ServeError(f"Refusing to listen on {self.host}: tritonserver 2.51 is only safe on loopback "
                             "(127.0.0.1). Pass --expose to override (read the warning it prints).")
        if self.restricted_apis and not KEY_CHARS.match(self.admin_key):
            raise ServeError(f"Bad {ADMIN_KEY_ENV}: use 16..256 characters from A-Z a-z 0-9 . _ ~ -.")

    @property
    def root(self) -> Path:
        return self.tools / "triton" / "pytriton" / "tritonserver"

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.http_port, "grpc": self.grpc_port, "metrics": self.metrics_port}

    def argv(self) -> list[str]:
        restricted = []
        if self.restricted_apis:
            # tritonserver --help prints `<apis>,<key>=<value>`, but 2.51 refuses that form ("option format is
            # '<config name>:<setting>=<value>'", server src/command_line_parser.cc r24.10): `<apis>:<key>=<value>`.
            spec = f"{','.join(self.restricted_apis)}:{ADMIN_KEY_HEADER}={self.admin_key}"
            restricted = [f"--grpc-restricted-protocol={spec}", f"--http-restricted-api={spec}"]
        return [
            str(self.binary),
            f"--model-repository={self.repository.resolve()}",
            f"--backend-directory={self.root / 'backends'}",
            f"--cache-directory={self.root / 'caches'}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            f"--model-control-mode={self.model_control_mode}",
            # With exit-on-error off the server must become ready with a model missing, so readiness is not strict.
            f"--strict-readiness={str(self.strict_readiness and self.exit_on_error).lower()}",
            f"--exit-on-error={str(self.exit_on_error).lower()}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
            *restricted,
            *self.extra_args,
        ]

    @property
    def runtime_env(self) -> Path:
        """The python backend's own virtualenv (numpy<2 + onnxruntime), made by scripts/fetch-tools.sh."""
        return self.tools / "triton" / "venv"

    def env(self) -> dict[str, str]:
        """The python backend stub embeds libpython and ignores PYTHONPATH; it finds its site-packages by looking
        up ``python3`` on PATH. Its C++ side was built against numpy 1.x (with numpy 2 every output tensor arrives
        empty), so models run in ``runtime_env`` (numpy<2), the way Triton's own images pin their Python."""
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
        env["PATH"] = os.pathsep.join((str(self.runtime_env / "bin"), env.get("PATH", "")))
        for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", ADMIN_KEY_ENV):
            env.pop(key, None)
        # glibc keeps a malloc arena per thread and returns little of it: under a 10-minute soak (scripts/soak.py,
        # deeplabv3_mobilenet 520x520, 4 clients) tritonserver grew 78 -> 181 MB and was still growing 3 MB/min;
        # with two arenas it levelled off at ~140 MB after two minutes. Triton's release notes list this as a known
        # issue ("malloc() may not release memory back to the operating system right away causing a false memory
        # leak", server releases v2.36.0 and later, Known Issues). The user's own setting wins.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        return env


def has_models(repository: Path) -> bool:
    return repository.is_dir() and any(repository.glob("*/config.pbtxt"))


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


# Resolved once here, not in the child: between fork and exec (other threads may hold the loader's locks) the child
# only calls an already-resolved function.
_PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def describe_exit(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


class TritonServer:
    """``with TritonServer(config) as server: server.wait_ready()``: a real tritonserver process.

    ``log_path``: where Triton's log goes (default: this process's stderr, i.e. the terminal)."""

    def __init__(self, config: ServerConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.stubs: dict[int, procs.Stub] = {}  # pid -> stub, as last seen
        self.regions: set[str] = set()  # /dev/shm regions of this server's stubs, removed on stop
        self._log = None
        self._pump: LogPump | None = None

    @property
    def http_url(self) -> str:
        return f"{self.config.host}:{self.config.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.config.host}:{self.config.grpc_port}"

    def start(self) -> TritonServer:
        cfg = self.config
        if not cfg.binary.is_file() or not (cfg.runtime_env / "bin" / "python3").exists():
            raise ServeError(f"tritonserver or its python environment is missing under {cfg.tools / 'triton'}: "
                             "run `make tools` (scripts/fetch-tools.sh triton).")
        if not has_models(cfg.repository):
            raise ServeError(f"No models in {cfg.repository}: export some first, e.g. `python -m export "
                             "deeplabv3_mobilenet --target local`.")
        for name, port in cfg.ports.items():
            if port_in_use(cfg.host, port):
                raise ServeError(f"Port {port} ({name}) on {cfg.host} is already in use: stop what holds it or "
                                 f"pass --{name}-port.")
        sink = sys.stderr
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = sink = self.log_path.open("ab")  # a restart appends
        self.stubs, self.regions = {}, set()
        self.process = subprocess.Popen(cfg.argv(), env=cfg.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        self.pgid = self.process.pid  # start_new_session: the server leads its own group; its stubs inherit it
        self._pump = LogPump(self.process.stdout, sink)
        return self

    @property
    def failed_models(self) -> dict[str, str]:
        """Models that failed to load (name -> cause, from Triton's log)."""
        return dict(self._pump.failed_models) if self._pump else {}

    def served_configs(self) -> dict[str, dict]:
        """The config of every READY model, read from the running server (the index with the server's own key)."""
        base = f"http://{self.http_url}"
        request = urllib.request.Request(f"{base}/v2/repository/index", data=b"{}", method="POST",
                                         headers=admin_headers(self.config.admin_key, "http"))
        with urllib.request.urlopen(request, timeout=10) as r:
            names = [m["name"] for m in json.load(r) if m.get("state") == "READY"]
        configs = {}
        for name in names:
            with urllib.request.urlopen(f"{base}/v2/models/{name}/config", timeout=10) as r:
                configs[name] = json.load(r)
        return configs

    def largest_requests(self) -> dict[str, int | None]:
        """Bytes of the largest request each READY model accepts (serve.security.request_bytes; None: a dynamic
        dimension or an unknown data type, unbounded)."""
        sizes: dict[str, int | None] = {}
        for name, config in self.served_configs().items():
            inputs = [TensorSpec.from_config(t) for t in config.get("input", [])]
            bounded = all(t.dtype in TRITON_DTYPES and min(t.dims, default=0) >= 0 for t in inputs)
            sizes[name] = request_bytes(inputs, int(config.get("max_batch_size", 0))) if bounded else None
        return sizes

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _why(self) -> str:
        if self._pump is not None:
            self._pump.join(2.0)
        summary = self._pump.summary() if self._pump else ""
        if summary:
            return f": {summary}"
        if self._pump is not None and self._pump.tail:
            return f"; its last log line: {self._pump.tail[-1]}"
        return ""

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServeError(f"tritonserver {describe_exit(self.process.returncode)} before it was ready"
                                 f"{self._why()}")
            ready = self.is_ready()
            found = self._scan_stubs()  # each poll records the regions: a server dying mid-load orphans them
            if ready:
                self.stubs = {s.pid: s for s in found}
                return
            time.sleep(0.5)
        raise ServeError(f"tritonserver not ready at http://{self.http_url}/v2/health/ready after {timeout_s:.0f} s"
                         f"{self._why()}")

    def _scan_stubs(self) -> list[procs.Stub]:
        if self.process is None:
            return []
        found = procs.stubs_of(self.process.pid)
        self.regions.update(s.region for s in found)
        return found

    def check(self) -> str | None:
        """None while the server and every model's python-backend stub run; else what died, in one line.

        Triton 2.51 does not notice a dead stub itself: model-ready and server-ready stay 200 while every request
        to that model fails (`Stub process ... is not healthy`)."""
        if self.process is None:
            return "tritonserver is not running"
        code = self.process.poll()
        if code is not None:
            return f"tritonserver {describe_exit(code)}{self._why()}"
        live = self._scan_stubs()
        running = {s.pid for s in live}
        for pid, stub in self.stubs.items():
            if pid in running:
                continue
            before = sum(s.model == stub.model for s in self.stubs.values())
            if sum(s.model == stub.model for s in live) < before:  # not replaced by a new stub
                return (f"model `{stub.model}`: its python backend stub (pid {pid}) died; Triton would fail every "
                        "request to it while still reporting it ready")
        self.stubs = {s.pid: s for s in live}
        return None

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM (Triton finishes in-flight requests), SIGKILL after ``grace_s``; then the rest of the group and
        the group's /dev/shm regions. Returns the server's exit code."""
        proc = self.process
        code = None
        if proc is not None:
            self._scan_stubs()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
            if self.pgid is not None:
                procs.kill_group(self.pgid)
                deadline = time.monotonic() + 5
                while procs.group_members(self.pgid) and time.monotonic() < deadline:
                    time.sleep(0.05)
            procs.remove_regions(self.regions)
            self.process = None  # only now: a stop interrupted by a signal is done again by the next call
        if self._pump is not None:
            self._pump.join(5.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
