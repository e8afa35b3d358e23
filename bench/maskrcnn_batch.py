"""Mask R-CNN batch throughput on this machine: in-process ONNX Runtime at batch 1, 2, 4 and the local Triton
(python backend, dynamic batcher) under the real perf_analyzer at concurrency 1..4.

    PYTHONPATH=. .venv/bin/python bench/maskrcnn_batch.py                        # full size (800), random weights
    PYTHONPATH=. .venv/bin/python bench/maskrcnn_batch.py --size 512 --json bench.json
    PYTHONPATH=. .venv/bin/python bench/maskrcnn_batch.py --onnx build/maskrcnn/model.onnx --skip-served

A benchmark, not a test: absolute numbers depend on the machine and whatever else runs on it; compare rows of one
run. perf_analyzer comes from `scripts/fetch-tools.sh perf`, tritonserver from `scripts/fetch-tools.sh triton`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from loadtest.analyzer import PerfAnalyzer, find_perf_analyzer  # noqa: E402
from loadtest.errors import LoadTestError  # noqa: E402

MODEL = "maskrcnn"


@dataclass(frozen=True)
class CountedRun:
    """One perf_analyzer run against a gRPC endpoint at a fixed concurrency (argv built here, no shell)."""

    tool: PerfAnalyzer
    url: str
    concurrency: int
    input_json: Path
    csv: Path
    requests: int
    max_trials: int

    def argv(self) -> list[str]:
        # Count windows, not time windows: a CPU Mask R-CNN request takes seconds. Loose stability: a few windows
        # of a few requests each are what a benchmark here can afford.
        return [str(self.tool.binary), "-m", MODEL, "-u", self.url, "-i", "grpc", "--input-data", str(self.input_json),
                "--concurrency-range", f"{self.concurrency}:{self.concurrency}", "--measurement-mode",
                "count_windows", "--measurement-request-count", str(self.requests), "--max-trials",
                str(self.max_trials), "--stability-percentage", "100", "-f", str(self.csv)]

    def run(self, timeout_s: float) -> float:
        """Throughput in inferences per second."""
        proc = subprocess.run(self.argv(), env=self.tool.env(), capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 and not self.csv.is_file():
            raise RuntimeError(f"perf_analyzer failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        header, row = self.csv.read_text().splitlines()[:2]
        return float(dict(zip(header.split(","), row.split(",")))["Inferences/Second"])


def model_stats(http_url: str) -> tuple[int, int]:
    """(inference_count, execution_count) from Triton's statistics API."""
    with urllib.request.urlopen(f"http://{http_url}/v2/models/{MODEL}/stats", timeout=10) as r:
        (stats,) = json.load(r)["model_stats"]
    return int(stats["inference_count"]), int(stats["execution_count"])


def export(spec, weights: str, work: Path) -> tuple[Path, float]:
    import torch

    from export.models import build_served_module
    from export.onnx_export import export_onnx

    torch.manual_seed(0)
    module = build_served_module(spec, weights)
    started = time.perf_counter()
    path = export_onnx(module, spec, work / "model.onnx")
    return path, time.perf_counter() - started


def in_process(spec, onnx_path: Path, batches: list[int], repeats: int, threads: int) -> dict[int, dict]:
    from export.onnx_export import example_input
    from export.parity import ort_session, run_onnxruntime

    session = ort_session(onnx_path, threads)
    rows = {}
    for batch in batches:
        images = example_input(spec, batch, seed=100).numpy()
        run_onnxruntime(onnx_path, spec, images, session)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            run_onnxruntime(onnx_path, spec, images, session)
        seconds = (time.perf_counter() - started) / repeats
        rows[batch] = {"batch_s": seconds, "img_per_s": batch / seconds}
        print(f"  ORT batch {batch}: {seconds:.2f} s per batch, {batch / seconds:.2f} img/s", flush=True)
    return rows


def served(spec, onnx_path: Path, concurrencies: list[int], tools: Path, work: Path, requests: int,
           max_trials: int, timeout_s: float) -> dict[int, dict]:
    from export.config import ServingOptions
    from export.onnx_export import example_input
    from export.repository import write_model
    from serve.server import ServerConfig, TritonServer

    try:
        tool = find_perf_analyzer(tools=tools)
    except LoadTestError as exc:
        raise SystemExit(f"error: {exc}") from None
    repo = work / "repository"
    write_model(spec, ServingOptions.for_target("local"), repo, onnx_path=onnx_path)
    image = example_input(spec, 1, seed=100).numpy()[0]
    data = work / "input.json"
    data.write_text(json.dumps({"data": [{"IMAGE": {"content": image.ravel().tolist(), "shape": list(image.shape)}}]}))
    config = ServerConfig.on_free_ports(repo, tools=tools)
    rows = {}
    with TritonServer(config, log_path=work / "tritonserver.log") as triton:
        triton.wait_ready(600)
        for c in concurrencies:
            before = model_stats(triton.http_url)
            analyzer = CountedRun(tool, triton.grpc_url, c, data, work / f"perf_c{c}.csv", max(requests, c),
                                    max_trials)
            rate = analyzer.run(timeout_s)
            after = model_stats(triton.http_url)
            inferences, executions = after[0] - before[0], after[1] - before[1]
            rows[c] = {"infer_per_s": rate, "inferences": inferences, "executions": executions,
                       "mean_batch": inferences / max(executions, 1)}
            print(f"  Triton concurrency {c}: {rate:.2f} infer/s, {inferences} inferences in {executions} "
                  f"executions (mean batch {inferences / max(executions, 1):.2f})", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    from export.spec import get_spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, help="input size (default: the spec's, 800)")
    p.add_argument("--weights", default="none", help="DEFAULT, none or a checkpoint path (default: %(default)s)")
    p.add_argument("--score-threshold", type=float,
                   help="detection score threshold (default: the spec's; random weights score every class near "
                        "1/91, so 0 gives the full D detections per image, the heads' worst case)")
    p.add_argument("--onnx", type=Path, help="benchmark this export instead of exporting (its spec must match)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4], help="in-process batch sizes")
    p.add_argument("--repeats", type=int, default=3, help="timed in-process runs per batch size")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 3, 4], help="perf_analyzer concurrencies")
    p.add_argument("--requests", type=int, default=8, help="requests per perf_analyzer measurement window")
    p.add_argument("--max-trials", type=int, default=3,
                   help="perf_analyzer windows per concurrency at most (3 or more: stability needs 3)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds one perf_analyzer run may take")
    p.add_argument("--skip-served", action="store_true", help="in-process numbers only")
    p.add_argument("--tools", type=Path, default=ROOT / ".tools", help="tools folder (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)

    spec = get_spec(MODEL).with_options(size=args.size, score_threshold=args.score_threshold)
    report: dict = {"size": spec.height, "score_threshold": spec.score_threshold,
                    "max_batch_size": spec.max_batch_size, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="maskrcnn-bench-") as tmp:
        work = Path(tmp)
        if args.onnx:
            onnx_path = args.onnx
        else:
            print(f"exporting {MODEL} at {spec.height}x{spec.width} (max batch {spec.max_batch_size})", flush=True)
            onnx_path, seconds = export(spec, args.weights, work)
            report["export_s"] = seconds
            print(f"  export {seconds:.1f} s", flush=True)
        report["onnx_bytes"] = onnx_path.stat().st_size
        print(f"  ONNX {report['onnx_bytes'] / 1e6:.1f} MB", flush=True)
        print("in-process ONNX Runtime", flush=True)
        report["onnxruntime"] = in_process(spec, onnx_path, args.batches, args.repeats, args.threads)
        if not args.skip_served:
            print("served (local Triton, python backend + ONNX Runtime, dynamic batcher)", flush=True)
            report["triton"] = served(spec, onnx_path, args.concurrency, args.tools, work, args.requests,
                                      args.max_trials, args.timeout)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
