"""Start, watch and stop a real local ``tritonserver`` (the CPU build from the nvidia-pytriton wheel).

The argv is built from a typed object (no shell). The server dies with its parent (``PR_SET_PDEATHSIG``) and is
stopped with SIGTERM, then SIGKILL after a grace period, so no process is left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ServeError(Exception):
    """A known user error: port taken, binary missing, server not ready in time."""


DEFAULT_TOOLS = Path(os.environ.get("SEGSERVE_TOOLS", Path(__file__).resolve().parent.parent / ".tools"))


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
    extra_args: tuple[str, ...] = field(default_factory=tuple)

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
            f"--strict-readiness={str(self.strict_readiness).lower()}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--log-verbose={self.log_verbose}",
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
        for key in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(key, None)
        return env


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class TritonServer:
    """``with TritonServer(config) as server: server.wait_ready()``: a real tritonserver process."""

    def __init__(self, config: ServerConfig, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log = None

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
        if not cfg.repository.is_dir() or not any(cfg.repository.glob("*/config.pbtxt")):
            raise ServeError(f"No models in {cfg.repository}: export some first, e.g. `python -m export "
                             "deeplabv3_mobilenet --target local`.")
        for name, port in cfg.ports.items():
            if port_in_use(cfg.host, port):
                raise ServeError(f"Port {port} ({name}) on {cfg.host} is already in use: stop what holds it or "
                                 f"pass --{name}-port.")
        out = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("wb")
            out = self._log
        self.process = subprocess.Popen(cfg.argv(), env=cfg.env(), stdout=out, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServeError(f"tritonserver exited with code {self.process.returncode} before it was ready"
                                 f"{self._log_hint()}")
            if self.is_ready():
                return
            time.sleep(0.5)
        raise ServeError(f"tritonserver not ready at http://{self.http_url}/v2/health/ready after {timeout_s:.0f} s"
                         f"{self._log_hint()}")

    def _log_hint(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-15:]
        return f"; log {self.log_path}:\n" + "\n".join(tail)

    def stop(self, grace_s: float = 30.0) -> int | None:
        proc, self.process = self.process, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
