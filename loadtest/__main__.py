"""``python -m loadtest``: load-test a served segserve model with the real perf_analyzer.

    python -m loadtest run --model deeplabv3_mobilenet                       # local server, c = 1,2,4,8
    python -m loadtest run --model unet --url triton.example:8001 --concurrency 8,16,32 --request-rate 50,100
    python -m loadtest input-data --model maskrcnn --url localhost:8001 --out data.json   # for an in-cluster run
    python -m loadtest plot perf-out/unet/unet.csv                           # redraw the PNG from a merged CSV
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from client.__main__ import header
from loadtest.errors import LoadTestError

DEFAULT_OUT = Path("perf-out")


def _numbers(kind, text: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a comma-separated list of numbers") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"`{text}`: every value must be positive")
    return values


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="served model name")
    p.add_argument("--url", default="localhost:8001", help="Triton gRPC address host:port (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the server to be ready")
    p.add_argument("--image", type=Path, action="append", default=None, metavar="FILE",
                   help="photo to send (repeatable; default: the sample photos bundled with matplotlib)")
    p.add_argument("--header", type=header, action="append", default=[], metavar="'K: V'",
                   help="gRPC metadata for every call (repeatable)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest", description="Load-test a served segserve model with the "
                                "real perf_analyzer (gRPC, real photos): merged CSV, PNG and a table.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a load sweep and write CSV + PNG",
                         description="Concurrency sweep (and optional request-rate sweep) with perf_analyzer, plus "
                                     "a system shared-memory run when client and server share a host. Writes "
                                     "OUT/MODEL/{MODEL.csv, MODEL.png, input_data.json, perf_analyzer.log, raw/}.")
    _target_args(run)
    run.add_argument("--concurrency", type=lambda t: _numbers(int, t), default=(1, 2, 4, 8),
                     help="requests in flight, comma-separated (default: 1,2,4,8)")
    run.add_argument("--request-rate", type=lambda t: _numbers(float, t), default=(),
                     help="also sweep these request rates (requests/s, comma-separated)")
    run.add_argument("--shared-memory", choices=("auto", "system", "none"), default="auto",
                     help="system shared-memory run: auto = when the server is on this host (default: %(default)s); "
                          "a restricted server needs SEGSERVE_ADMIN_KEY in the environment")
    run.add_argument("--shm-concurrency", type=lambda t: _numbers(int, t), default=(),
                     help="concurrency levels of the shared-memory run (default: lowest and highest of --concurrency)")
    run.add_argument("--window-ms", type=int, default=4000, help="perf_analyzer measurement window (default: 4000)")
    run.add_argument("--stability", type=int, default=20,
                     help="percent within which 3 windows must agree, 1..1000 (default: 20; perf_analyzer's own is 10)")
    run.add_argument("--max-trials", type=int, default=8, help="windows per level before giving up (default: 8)")
    run.add_argument("--compression", choices=("none", "gzip", "deflate"), default="none",
                     help="gRPC request compression (default: %(default)s)")
    run.add_argument("--perf-analyzer", type=Path, help="perf_analyzer binary (default: .tools/ or PATH)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")

    data = sub.add_parser("input-data", help="write perf_analyzer's --input-data JSON only",
                          description="Build the --input-data JSON from real photos with the client's "
                                      "pre-processing (e.g. to copy into an in-cluster perf_analyzer pod).")
    _target_args(data)
    data.add_argument("--out", type=Path, required=True, help="JSON file to write")

    redraw = sub.add_parser("plot", help="draw the PNG of a CSV (merged, or perf_analyzer's own)",
                            description="Draw CSV.png from a merged CSV written by `run`, or from perf_analyzer's "
                                        "own -f CSV (e.g. copied back from an in-cluster run).")
    redraw.add_argument("csv", type=Path, help="merged or perf_analyzer CSV")
    redraw.add_argument("--title", default=None, help="plot title (default: the CSV's name)")
    return p


def _images(args) -> list[Path]:
    from loadtest.inputs import sample_photos

    return args.image or sample_photos()


def cmd_run(args) -> int:
    from loadtest.analyzer import Measurement, find_perf_analyzer
    from loadtest.sweep import Plan, call_headers, run_sweep
    from loadtest.target import probe

    started = time.monotonic()
    tool = find_perf_analyzer(args.perf_analyzer)
    plan = Plan(concurrency=args.concurrency, request_rates=args.request_rate, shared_memory=args.shared_memory,
                shm_concurrency=args.shm_concurrency, compression=args.compression, headers=tuple(args.header),
                measurement=Measurement(args.window_ms, args.stability, args.max_trials))
    target = probe(args.url, args.model, args.timeout, call_headers(args.header))
    print(f"load test of `{target.model}` on {target.server_version} at {target.url} with {tool.binary}", flush=True)
    outcome = run_sweep(target, plan, tool, args.out, _images(args))
    for note in outcome.notes:
        print(f"note: {note}")
    print(f"CSV {outcome.csv}\nPNG {outcome.png}\nserver: {outcome.succeeded_requests} requests succeeded, "
          f"{outcome.failed_requests} failed; {time.monotonic() - started:.0f} s")
    if outcome.failed_requests:
        raise LoadTestError(f"{outcome.failed_requests} requests failed on the server during the load test "
                            f"(see the server log).")
    return 0


def cmd_input_data(args) -> int:
    from loadtest.inputs import write_input_data
    from loadtest.sweep import call_headers
    from loadtest.target import probe

    target = probe(args.url, args.model, args.timeout, call_headers(args.header))
    images = _images(args)
    path = write_input_data(args.out, images, target.info.input_name, target.info.height, target.info.width)
    print(f"{path}: {len(images)} images as `{target.info.input_name}` "
          f"[{target.info.height}, {target.info.width}, 3] uint8")
    return 0


def cmd_plot(args) -> int:
    from loadtest.report import plot, read_any_csv

    png = plot(read_any_csv(args.csv), args.csv.with_suffix(".png"), args.title or args.csv.stem)
    print(png)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return {"run": cmd_run, "input-data": cmd_input_data, "plot": cmd_plot}[args.command](args)
    except LoadTestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
