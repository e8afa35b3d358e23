"""A load test: probe the server, build the input data, run perf_analyzer once per load level, report.

Outputs (in ``<out>/<model>/``): ``<model>.csv`` (every level, merged), ``<model>.png``, ``input_data.json``,
``perf_analyzer.log`` and ``raw/`` (perf_analyzer's own CSV per level).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.analyzer import Load, Measurement, PerfAnalyzer, PerfRun
from loadtest.errors import LoadTestError
from loadtest.inputs import write_input_data
from loadtest.report import Row, plot, read_perf_csv, table, write_merged_csv
from loadtest.target import Target, is_same_host, statistics
from serve import security  # the key header, defined once by the server


def admin_headers() -> tuple[tuple[str, str], ...]:
    """The gRPC metadata that unlocks the restricted shared-memory protocol, when the key is known."""
    key = os.environ.get(security.ADMIN_KEY_ENV)
    return tuple(security.admin_headers(key).items()) if key else ()


def call_headers(headers) -> dict[str, str]:
    """Metadata for loadtest's own gRPC calls: ``headers`` (name, value) pairs, plus the admin key when it is known
    (a restricted server may also guard the repository index that lists the served models)."""
    return {**dict(headers), **dict(admin_headers())}


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    request_rates: tuple[float, ...] = ()
    shared_memory: str = "auto"  # auto: a system shared-memory run when client and server share a host
    shm_concurrency: tuple[int, ...] = ()  # default: the lowest and highest concurrency
    measurement: Measurement = Measurement()
    compression: str = "none"
    headers: tuple[tuple[str, str], ...] = ()
    level_timeout_s: float = 0.0  # 0: from the measurement settings

    def __post_init__(self) -> None:
        if self.shared_memory not in ("auto", "system", "none"):
            raise LoadTestError(f"Unknown shared memory `{self.shared_memory}`. Available: auto, system, none.")
        if not self.concurrency and not self.request_rates:
            raise LoadTestError("Nothing to run: give at least one concurrency or request rate.")

    def loads(self) -> list[Load]:
        return [Load("concurrency", c) for c in self.concurrency] + \
            [Load("request_rate", r) for r in self.request_rates]

    def shm_loads(self) -> list[Load]:
        levels = self.shm_concurrency or tuple(sorted({min(self.concurrency or (1,)), max(self.concurrency or (1,))}))
        return [Load("concurrency", c) for c in levels]

    def timeout_s(self) -> float:
        m = self.measurement
        return self.level_timeout_s or (m.window_ms / 1e3) * (m.max_trials + 2) * 2 + 60


@dataclass
class Outcome:
    rows: list[Row]
    csv: Path
    png: Path
    failed_requests: int
    succeeded_requests: int
    notes: list[str] = field(default_factory=list)


def run_sweep(target: Target, plan: Plan, tool: PerfAnalyzer, out: Path, images: list[Path],
              progress=print) -> Outcome:
    folder = out / target.model
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    log = folder / "perf_analyzer.log"
    log.write_text("")
    data = write_input_data(folder / "input_data.json", images, target.info.input_name, target.info.height,
                            target.info.width)
    runs: list[tuple[str, PerfRun]] = []
    base = dict(tool=tool, model=target.model, url=target.url, input_data=data, measurement=plan.measurement,
                compression=plan.compression, headers=plan.headers, tensor_names=target.tensor_names)
    for load in plan.loads():
        runs.append(("grpc", PerfRun(csv=raw / f"grpc-{load.kind}-{load.value:g}.csv", load=load, **base)))
    notes = []
    shm = plan.shared_memory == "system" or (plan.shared_memory == "auto" and is_same_host(target.url))
    if plan.shared_memory == "auto" and not shm:
        notes.append(f"no shared-memory run: {target.url} is not this host")
    if shm:
        shm_base = {**base, "headers": plan.headers + admin_headers()}
        for load in plan.shm_loads():
            runs.append(("system-shm", PerfRun(csv=raw / f"shm-{load.kind}-{load.value:g}.csv", load=load,
                                               shared_memory="system",
                                               output_shared_memory_bytes=target.largest_output_bytes,
                                               **shm_base)))
    headers = call_headers(plan.headers)
    before = statistics(target.url, target.model, headers)
    rows: list[Row] = []
    for mode, run in runs:
        progress(f"  {target.model}: {mode} {run.load.label} ...", flush=True)
        try:
            run.run(log, plan.timeout_s())
        except LoadTestError as exc:
            # Asked for explicitly, a refused shared-memory run is an error; in auto mode it is skipped, with why.
            if mode == "system-shm" and plan.shared_memory == "auto" and "restricted" in str(exc) \
                    and not admin_headers():
                notes.append(f"shared-memory run skipped: the server restricts its shared-memory API; export "
                             f"{security.ADMIN_KEY_ENV}=<its admin key> to include it")
                break
            raise
        rows += read_perf_csv(run.csv, mode)
        progress(f"    {rows[-1].throughput:.2f} infer/s, p50 {rows[-1].p50_ms:.1f} ms, p99 {rows[-1].p99_ms:.1f} ms",
                 flush=True)
    after = statistics(target.url, target.model, headers)
    csv_path = write_merged_csv(rows, folder / f"{target.model}.csv")
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    png = plot(rows, folder / f"{target.model}.png", f"{target.model} on {target.server_version} at {target.url}"
                                                     f" - {date}")
    outcome = Outcome(rows, csv_path, png, after["fail"] - before["fail"], after["success"] - before["success"],
                      notes)
    progress(table(rows))
    return outcome
