"""Soak the local tritonserver: mixed load for a while, then requests, failures, latency and memory.

    python scripts/soak.py --repository model_repository --duration 600 --concurrency 4

Starts `serve`'s TritonServer on free loopback ports (or its own `--grpc-port`/`--http-port`), sends a mix of
models, batch sizes and protocols (gRPC and HTTP) from `--concurrency` threads, each request a fresh random image
with a deadline, and samples the resident memory (RSS) of tritonserver and of every python-backend stub. At the end
it prints requests, failures, p50/p99 latency and RSS at start (after warm-up), end and its trend over the second
half of the run (MB per minute, least squares), so a leak shows as a steady positive slope. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve.server import ServerConfig, ServeError, TritonServer  # noqa: E402

DEADLINE_S = 60.0


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass
class Model:
    name: str
    max_batch: int
    dims: tuple[int, ...]


def served_models(server: TritonServer) -> list[Model]:
    """Every READY model with its input shape."""
    return [Model(name, int(config.get("max_batch_size", 0)), tuple(int(d) for d in config["input"][0]["dims"]))
            for name, config in server.served_configs().items()]


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def failed(self, message: str) -> None:
        with self.lock:
            key = message.splitlines()[0][:120] if message else "?"
            self.failures[key] = self.failures.get(key, 0) + 1


def worker(server: TritonServer, models: list[Model], stop: threading.Event, stats: Stats, seed: int,
           max_batch: int) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    clients = {"grpc": (grpcclient, grpcclient.InferenceServerClient(server.grpc_url)),
               "http": (httpclient, httpclient.InferenceServerClient(server.http_url, network_timeout=DEADLINE_S))}
    while not stop.is_set():
        model = pick.choice(models)
        protocol = pick.choice(("grpc", "grpc", "http"))
        batch = pick.randint(1, max(1, min(model.max_batch, max_batch)))
        module, client = clients[protocol]
        image = rng.integers(0, 256, (batch, *model.dims), dtype=np.uint8)
        tensor = module.InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image)
        started = time.perf_counter()
        try:
            if protocol == "grpc":
                client.infer(model.name, [tensor], client_timeout=DEADLINE_S)
            else:
                client.infer(model.name, [tensor])
            stats.ok(time.perf_counter() - started)
        except Exception as exc:  # counted and reported, the soak goes on
            stats.failed(f"{model.name}/{protocol}: {exc}")


def trend_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS over the second half of the samples."""
    half = samples[len(samples) // 2:]
    if len(half) < 3:
        return float("nan")
    t = np.array([s[0] for s in half]) / 60.0
    y = np.array([s[1] for s in half])
    return float(np.polyfit(t, y, 1)[0])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python scripts/soak.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="model repository")
    p.add_argument("--duration", type=float, default=300.0, help="seconds of load after warm-up (default 300)")
    p.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--max-batch", type=int, default=4, help="largest batch a request sends (default 4)")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS samples (default 5)")
    p.add_argument("--samples", type=Path, help="also write every RSS sample here (CSV: seconds, requests, MB per "
                   "process)")
    p.add_argument("--log", type=Path, default=Path("soak-tritonserver.log"), help="tritonserver log file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = ServerConfig.on_free_ports(args.repository)
    try:
        with TritonServer(config, log_path=args.log) as server:
            server.wait_ready(600)
            models = served_models(server)
            print(f"soak: {len(models)} model(s) {', '.join(m.name for m in models)}; {args.concurrency} threads, "
                  f"{args.duration:.0f} s", flush=True)
            stats, stop = Stats(), threading.Event()
            threads = [threading.Thread(target=worker, args=(server, models, stop, stats, i, args.max_batch),
                                        daemon=True) for i in range(args.concurrency)]
            for t in threads:
                t.start()
            time.sleep(min(10.0, args.duration / 10))  # warm-up: first batches, allocator pools
            pids = {"tritonserver": server.process.pid}
            pids.update({f"stub {s.model}": s.pid for s in server.stubs.values()})
            start = time.monotonic()
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
            counts: list[int] = []
            requests_at_start = len(stats.latencies)
            while (now := time.monotonic() - start) < args.duration:
                for name, pid in pids.items():
                    samples[name].append((now, rss_mb(pid)))
                counts.append(len(stats.latencies) - requests_at_start)
                problem = server.check()
                if problem:
                    print(f"soak: {problem}", flush=True)
                    break
                time.sleep(args.sample_every)
            for name, pid in pids.items():
                samples[name].append((time.monotonic() - start, rss_mb(pid)))
            counts.append(len(stats.latencies) - requests_at_start)
            stop.set()
            for t in threads:
                t.join(DEADLINE_S + 5)
            elapsed = time.monotonic() - start
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.samples is not None:
        names = list(samples)
        rows = [",".join(["seconds", "requests", *names])]
        for i, count in enumerate(counts):
            rows.append(",".join([f"{samples[names[0]][i][0]:.1f}", str(count),
                                  *(f"{samples[n][i][1]:.1f}" for n in names)]))
        args.samples.write_text("\n".join(rows) + "\n")
    lat = np.array(stats.latencies[requests_at_start:]) * 1000
    failures = sum(stats.failures.values())
    print(f"requests {len(lat)} in {elapsed:.0f} s ({len(lat) / elapsed:.1f}/s), failures {failures} (whole run); "
          f"latency p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")
    for message, count in sorted(stats.failures.items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {message}")
    print(f"{'process':32} {'RSS start MB':>12} {'RSS end MB':>11} {'trend 2nd half MB/min':>22}")
    for name, points in samples.items():
        print(f"{name:32} {points[0][1]:12.1f} {points[-1][1]:11.1f} {trend_mb_per_min(points):22.2f}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
