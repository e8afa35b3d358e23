"""The real ``perf_analyzer`` (the binary of the tritonclient 2.49.0 wheel, fetched by ``scripts/fetch-tools.sh perf``):
located, given an argv built from a typed object, and run without a shell.

perf_analyzer's options and output are those of tritonclient 2.49.0 (triton-inference-server/client, r24.08,
``src/c++/perf_analyzer``): ``-f`` writes one CSV row per load level, in microseconds; a level that does not settle
within ``--max-trials`` windows makes it exit non-zero without a CSV.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from export.layout import tools_dir
from loadtest.errors import LoadTestError

DEFAULT_TOOLS = tools_dir()
FETCH_HINT = "fetch it with `scripts/fetch-tools.sh perf` (or `make tools`)"
SHARED_MEMORY = ("none", "system")
COMPRESSION = ("none", "gzip", "deflate")
# perf_analyzer's -H sends its headers as gRPC metadata on every call, shared-memory registration included
# (client r24.08, src/c++/perf_analyzer/client_backend/triton/triton_client_backend.cc), although its --help
# says "ignored for GRPC": the admin key (serve.security.GRPC_ADMIN_KEY_HEADER) goes through it.


@dataclass(frozen=True)
class PerfAnalyzer:
    """An installed perf_analyzer: the binary and the folder of the CUDA runtime it links (no GPU needed)."""

    binary: Path
    libdir: Path | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.libdir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.libdir), env.get("LD_LIBRARY_PATH", ""))
                                                     if p)
        return env


def find_perf_analyzer(explicit: Path | None = None, tools: Path = DEFAULT_TOOLS) -> PerfAnalyzer:
    """``explicit``, else ``tools/perf_analyzer/perf_analyzer``, else one on PATH (the Triton SDK image has one)."""
    if explicit is not None:
        if not (explicit.is_file() and os.access(explicit, os.X_OK)):
            raise LoadTestError(f"perf_analyzer `{explicit}` is not an executable file.")
        lib = explicit.parent / "lib"
        return PerfAnalyzer(explicit, lib if lib.is_dir() else None)
    fetched = tools / "perf_analyzer"
    if (fetched / ".complete").exists() and (fetched / "perf_analyzer").is_file():
        return PerfAnalyzer(fetched / "perf_analyzer", fetched / "lib")
    on_path = shutil.which("perf_analyzer")
    if on_path:
        return PerfAnalyzer(Path(on_path))
    raise LoadTestError(f"perf_analyzer is missing (looked in {fetched} and on PATH): {FETCH_HINT}.")


@dataclass(frozen=True)
class Load:
    """One load level: a fixed number of requests in flight, or a fixed request rate (requests per second)."""

    kind: str  # "concurrency" | "request_rate"
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("concurrency", "request_rate"):
            raise LoadTestError(f"Unknown load kind `{self.kind}`. Available: concurrency, request_rate.")
        if self.value <= 0 or (self.kind == "concurrency" and self.value != int(self.value)):
            raise LoadTestError(f"Bad {self.kind.replace('_', ' ')} {self.value:g}: use a positive "
                                f"{'integer' if self.kind == 'concurrency' else 'number'}.")

    @property
    def label(self) -> str:
        return f"c={int(self.value)}" if self.kind == "concurrency" else f"{self.value:g} req/s"

    def argv(self) -> list[str]:
        if self.kind == "concurrency":
            n = int(self.value)
            return [f"--concurrency-range={n}:{n}"]
        return [f"--request-rate-range={self.value:g}:{self.value:g}"]


@dataclass(frozen=True)
class Measurement:
    """How perf_analyzer measures each level: windows of ``window_ms``, stable when ``stability_percent`` apart."""

    window_ms: int = 4000
    stability_percent: int = 20
    max_trials: int = 8

    def __post_init__(self) -> None:
        if self.window_ms < 100:
            raise LoadTestError(f"Bad measurement window {self.window_ms} ms: use 100 ms or more.")
        if not 1 <= self.stability_percent <= 1000:
            raise LoadTestError(f"Bad stability {self.stability_percent}%: use 1..1000.")
        if self.max_trials < 3:
            raise LoadTestError(f"Bad max trials {self.max_trials}: perf_analyzer needs at least 3.")

    def argv(self) -> list[str]:
        return [f"--measurement-interval={self.window_ms}", f"--stability-percentage={self.stability_percent}",
                f"--max-trials={self.max_trials}"]


@dataclass(frozen=True)
class PerfRun:
    """One perf_analyzer invocation over gRPC: one model, one load level, real input data, a CSV report."""

    tool: PerfAnalyzer
    model: str
    url: str
    input_data: Path
    csv: Path
    load: Load
    measurement: Measurement = Measurement()
    shared_memory: str = "none"
    output_shared_memory_bytes: int = 0  # per output tensor and request (perf_analyzer multiplies by batch size)
    headers: tuple[tuple[str, str], ...] = ()
    compression: str = "none"
    tensor_names: tuple[str, ...] = ()  # the model's inputs and outputs: perf_analyzer's shared-memory region names

    def __post_init__(self) -> None:
        if self.shared_memory not in SHARED_MEMORY:
            raise LoadTestError(f"Unknown shared memory `{self.shared_memory}`. Available: "
                                f"{', '.join(SHARED_MEMORY)}.")
        if self.compression not in COMPRESSION:
            raise LoadTestError(f"Unknown gRPC compression `{self.compression}`. Available: "
                                f"{', '.join(COMPRESSION)}.")
        if self.shared_memory == "system" and self.output_shared_memory_bytes <= 0:
            raise LoadTestError("A shared-memory run needs the output region size (from the model's outputs).")

    def argv(self) -> list[str]:
        argv = [str(self.tool.binary), "-m", self.model, "-u", self.url, "-i", "grpc", "--sync",
                f"--input-data={self.input_data}", *self.load.argv(), *self.measurement.argv(),
                "-f", str(self.csv), "--verbose-csv"]
        if self.shared_memory != "none":
            argv += [f"--shared-memory={self.shared_memory}",
                     f"--output-shared-memory-size={self.output_shared_memory_bytes}"]
        if self.compression != "none":
            argv.append(f"--grpc-compression-algorithm={self.compression}")
        for key, value in self.headers:
            argv += ["-H", f"{key}:{value}"]
        return argv

    def run(self, log: Path, timeout_s: float) -> None:
        """Run to completion; a failure raises LoadTestError with perf_analyzer's own reason (from its output)."""
        self.csv.parent.mkdir(parents=True, exist_ok=True)
        self.csv.unlink(missing_ok=True)
        started = time.time()
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(self._shown_argv())}\n".encode())
            out.flush()
            try:
                code = subprocess.run(self.argv(), env=self.tool.env(), stdout=out, stderr=subprocess.STDOUT,
                                      timeout=timeout_s).returncode
            except subprocess.TimeoutExpired:
                code = None
        if self.shared_memory != "none":
            self._remove_leftover_regions(started)
        if code is None:
            raise LoadTestError(f"perf_analyzer did not finish {self.load.label} of `{self.model}` within "
                                f"{timeout_s:.0f} s; log: {log}")
        if code != 0 or not self.csv.is_file():
            raise LoadTestError(f"perf_analyzer failed at {self.load.label} of `{self.model}` (exit {code}): "
                                f"{failure_reason(log)} (log: {log})")

    def _shown_argv(self) -> list[str]:
        """The argv with header values hidden (they may be secrets)."""
        shown, hide = [], False
        for arg in self.argv():
            shown.append(arg.split(":", 1)[0] + ":***" if hide else arg)
            hide = arg == "-H"
        return shown

    def _remove_leftover_regions(self, since: float) -> None:
        """perf_analyzer names its system shared-memory regions after the tensors (``/dev/shm/<TENSOR>``) and leaves
        them behind when it fails (seen with 2.49): remove the ones this run created."""
        for name in self.tensor_names:
            path = Path("/dev/shm") / name
            try:
                if path.is_file() and path.stat().st_mtime >= since:
                    path.unlink()
            except OSError:
                pass


def failure_reason(log: Path) -> str:
    """perf_analyzer's own reason: its last ``error: ...`` line, else its last line about a failure."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error"):
            reason = line
            break
    else:
        failures = [ln for ln in lines if ln.lower().startswith(("failed", "thread [", "no valid requests"))
                    or "unable to" in ln.lower()]
        reason = failures[-1] if failures else (lines[-1] if lines else "no output")
    if "restricted" in reason:
        reason += (" - the server restricts this API: export SEGSERVE_ADMIN_KEY=<its admin key> "
                   "(or run with --shared-memory none)")
    elif "stable measurement" in reason or "larger time window" in reason:
        reason += " - the machine is busy or the model slow: raise --window-ms or --stability"
    return reason
