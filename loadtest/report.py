"""perf_analyzer CSV rows -> one merged CSV, a text table and a PNG.

perf_analyzer 2.49's ``-f`` CSV (with ``--verbose-csv``) has one row per load level; its first column is
``Concurrency`` or ``Request Rate``, then ``Inferences/Second``, the client/server split of the average latency
(``Client Send``, ``Network+Server Send/Recv``, ``Server Queue``, ``Server Compute Input``, ``Server Compute Infer``,
``Server Compute Output``, ``Client Recv``), percentiles (``p50 latency`` ... ``p99 latency``) and ``Avg latency``,
all times in microseconds.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from loadtest.errors import LoadTestError

THROUGHPUT = "Inferences/Second"
SERVER_PARTS = ("Server Queue", "Server Compute Input", "Server Compute Infer", "Server Compute Output")
REQUIRED = (THROUGHPUT, "p50 latency", "p99 latency", "Avg latency", *SERVER_PARTS)
LEVEL_COLUMNS = {"Concurrency": "concurrency", "Request Rate": "request_rate"}
MERGED_PREFIX = ("mode", "load", "level")


@dataclass(frozen=True)
class Row:
    """One load level's measurement (times in milliseconds)."""

    mode: str  # "grpc" | "system-shm"
    load: str  # "concurrency" | "request_rate"
    level: float
    throughput: float
    p50_ms: float
    p99_ms: float
    avg_ms: float
    server_ms: dict[str, float]
    raw: dict[str, str]

    @property
    def label(self) -> str:
        return f"c={self.level:g}" if self.load == "concurrency" else f"{self.level:g}/s"

    @property
    def outside_server_ms(self) -> float:
        """Client, network and (de)serialisation: the average latency the server-side parts do not explain."""
        return max(0.0, self.avg_ms - sum(self.server_ms.values()))


def _row(mode: str, load: str, level: float, raw: dict[str, str]) -> Row:
    """One CSV line's measurement: perf_analyzer's columns (microseconds) in milliseconds."""
    us = {k: float(raw[k] or 0) for k in REQUIRED}
    return Row(mode, load, level, us[THROUGHPUT], us["p50 latency"] / 1e3, us["p99 latency"] / 1e3,
               us["Avg latency"] / 1e3, {k: us[k] / 1e3 for k in SERVER_PARTS}, raw)


def read_perf_csv(path: Path, mode: str) -> list[Row]:
    """The rows of one perf_analyzer CSV; missing columns are an error naming them."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        level_column = next((c for c in header if c in LEVEL_COLUMNS), None)
        missing = [c for c in REQUIRED if c not in header]
        if level_column is None or missing:
            raise LoadTestError(f"{path} is not a perf_analyzer CSV: missing columns "
                                f"{', '.join(missing) or 'Concurrency/Request Rate'}.")
        kind = LEVEL_COLUMNS[level_column]
        return [_row(mode, kind, float(raw[level_column]), dict(raw)) for raw in reader]


def read_any_csv(path: Path) -> list[Row]:
    """A merged CSV, or perf_analyzer's own (e.g. copied back from an in-cluster run: mode ``grpc``)."""
    if not path.is_file():
        raise LoadTestError(f"No such CSV `{path}`.")
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    return read_merged_csv(path) if header[:3] == list(MERGED_PREFIX) else read_perf_csv(path, "grpc")


def read_merged_csv(path: Path) -> list[Row]:
    """The rows of a merged CSV written by ``write_merged_csv``."""
    if not path.is_file():
        raise LoadTestError(f"No such CSV `{path}`.")
    rows = []
    with path.open(newline="") as f:
        for raw in csv.DictReader(f):
            try:
                rows.append(_row(raw["mode"], raw["load"], float(raw["level"]), raw))
            except (KeyError, ValueError, TypeError) as exc:
                raise LoadTestError(f"{path} is not a merged loadtest CSV (column {exc} missing or bad).") from None
    return rows


def write_merged_csv(rows: list[Row], path: Path) -> Path:
    """All rows in one CSV: ``mode,load,level`` then perf_analyzer's own columns (level column dropped)."""
    columns: list[str] = []
    for row in rows:
        for key in row.raw:
            if key not in LEVEL_COLUMNS and key not in columns:
                columns.append(key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*MERGED_PREFIX, *columns], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({"mode": row.mode, "load": row.load, "level": f"{row.level:g}", **row.raw})
    os.replace(tmp, path)
    return path


def table(rows: list[Row]) -> str:
    """A plain-text table of the rows."""
    head = f"{'mode':<11} {'load':>9} {'infer/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'queue ms':>9} " \
           f"{'infer ms':>9} {'in+out ms':>9} {'outside ms':>10}"
    lines = [head]
    for r in rows:
        io = r.server_ms["Server Compute Input"] + r.server_ms["Server Compute Output"]
        lines.append(f"{r.mode:<11} {r.label:>9} {r.throughput:8.2f} {r.p50_ms:8.1f} {r.p99_ms:8.1f} "
                     f"{r.server_ms['Server Queue']:9.2f} {r.server_ms['Server Compute Infer']:9.1f} {io:9.2f} "
                     f"{r.outside_server_ms:10.2f}")
    return "\n".join(lines)


def plot(rows: list[Row], path: Path, title: str) -> Path:
    """Throughput vs p50/p99 latency per load level, and the server-side breakdown of the average latency."""
    try:
        import matplotlib
    except ImportError:
        raise LoadTestError("Plots need matplotlib: pip install 'segserve[perf]'.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise LoadTestError("Nothing to plot: no measurements.")
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    series: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        series.setdefault((row.mode, row.load), []).append(row)
    for index, ((mode, load), items) in enumerate(series.items()):
        items = sorted(items, key=lambda r: r.level)
        colour = f"C{index}"
        name = f"{mode}, {load.replace('_', ' ')}"
        tput = [r.throughput for r in items]
        left.plot([r.p50_ms for r in items], tput, "o-", color=colour, label=f"{name}: p50")
        left.plot([r.p99_ms for r in items], tput, "^--", color=colour, alpha=0.7, label=f"{name}: p99")
        for r in items:
            left.annotate(r.label, (r.p50_ms, r.throughput), textcoords="offset points", xytext=(4, 4), fontsize=8)
    left.set_xlabel("latency (ms)")
    left.set_ylabel("throughput (infer/s)")
    left.set_title("throughput vs p50 / p99 latency")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)

    bars = [r for r in rows if r.load == "concurrency"] or rows
    labels = [f"{r.label}\n{'shm' if r.mode == 'system-shm' else r.mode}" for r in bars]
    bottom = [0.0] * len(bars)
    parts = [(k.replace("Server ", "server ").lower(), [r.server_ms[k] for r in bars]) for k in SERVER_PARTS]
    parts.append(("client + network", [r.outside_server_ms for r in bars]))
    for name, values in parts:
        right.bar(labels, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    right.set_ylabel("average latency (ms)")
    right.set_title("where the average latency goes")
    right.legend(fontsize=8)
    right.tick_params(axis="x", labelsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path
