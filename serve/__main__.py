"""``python -m serve``: run the real local tritonserver in the foreground until Ctrl-C / SIGTERM, watching it.

    python -m serve --repository model_repository            # Triton's default ports 8000/8001/8002
    python -m serve --grpc-port 9001 --export-if-empty unet  # export unet first if the repository is empty

Security, liveness and the bad-model policy are described in README.md ("Serve locally").
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from export.spec import DEMO_MODELS
from serve.security import (ADMIN_KEY_ENV, ADMIN_KEY_HEADER, EXPOSED_WARNING, GRPC_ADMIN_KEY_HEADER, MAX_REQUEST_BYTES,
                            MAX_REQUEST_MIB, MIB, is_loopback)
from serve.server import DEFAULT_TOOLS, ServerConfig, ServeError, TritonServer, has_models


class _Stop(Exception):
    """SIGINT or SIGTERM arrived; the message is the signal's name."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serve", description="Run the real local tritonserver (CPU build "
                                "with the python backend) on a segserve model repository, and watch it.",
                                epilog=f"The shared-memory and model-repository APIs need header `{ADMIN_KEY_HEADER}` "
                                f"(gRPC: `{GRPC_ADMIN_KEY_HEADER}`) with the key from ${ADMIN_KEY_ENV} (unset: a "
                                f"random key per start, not shown). Requests above {MAX_REQUEST_MIB} MiB are "
                                "outside the documented limit. See README.md, 'Serve locally'.")
    p.add_argument("--repository", type=Path, default=Path("model_repository"), help="model repository folder")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP/REST port, 1..65535 (default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port, 1..65535 (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; anything but "
                   "loopback needs --expose)")
    p.add_argument("--expose", action="store_true", help="allow a non-loopback --host (tritonserver 2.51 has known "
                   "vulnerabilities: a warning says which)")
    p.add_argument("--tools", type=Path, default=DEFAULT_TOOLS, help="folder scripts/fetch-tools.sh filled")
    p.add_argument("--export-if-empty", nargs="*", metavar="MODEL", default=None,
                   help=f"export these models (target local) first when the repository has none "
                        f"(no names: {' '.join(DEMO_MODELS)})")
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for readiness")
    p.add_argument("--log", type=Path, help="write the server log here instead of the terminal")
    p.add_argument("--keep-going", action="store_true", help="serve the other models when one fails to load "
                   "(default: a model that fails to load stops the server with its name and the cause)")
    p.add_argument("--restarts", type=int, default=0, help="restart tritonserver this many times when it or a "
                   "model's backend process dies (default: %(default)s: exit 1 naming what died)")
    p.add_argument("--watch-interval", type=float, default=1.0, help="seconds between liveness checks of the "
                   "server and of every model's backend process (default: %(default)s)")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.restarts < 0:
        raise ServeError(f"Bad --restarts {args.restarts}: use 0 or more.")
    if not args.watch_interval > 0:
        raise ServeError(f"Bad --watch-interval {args.watch_interval}: use a number of seconds > 0.")
    if not args.ready_timeout > 0:
        raise ServeError(f"Bad --ready-timeout {args.ready_timeout}: use a number of seconds > 0.")


def _report_ready(server: TritonServer) -> None:
    """The ready line, the key and limit in force, and a warning for each model not served or over the limit."""
    config = server.config
    for model, cause in sorted(server.failed_models.items()):
        print(f"warning: model `{model}` failed to load and is not served (--keep-going): {cause}",
              file=sys.stderr, flush=True)
    try:
        largest = server.largest_requests()
    except (OSError, ValueError, KeyError) as exc:
        print(f"warning: could not read the served model configs ({exc})", file=sys.stderr, flush=True)
        largest = {}
    for model, nbytes in sorted(largest.items()):
        if nbytes is None or nbytes > MAX_REQUEST_BYTES:
            size = "unbounded (a dynamic dimension)" if nbytes is None else f"{nbytes / MIB:.1f} MiB"
            print(f"warning: model `{model}` accepts requests of {size}, above the documented "
                  f"{MAX_REQUEST_MIB} MiB request limit (README, 'Serve locally'): export it with a "
                  "smaller --max-batch-size or --size", file=sys.stderr, flush=True)
    print(f"Triton ready: HTTP http://{server.http_url}  gRPC {server.grpc_url}  metrics "
          f"http://{config.host}:{config.metrics_port}/metrics  (Ctrl-C stops)", flush=True)
    print(f"shared-memory and repository APIs need header `{ADMIN_KEY_HEADER}` (gRPC: "
          f"`{GRPC_ADMIN_KEY_HEADER}`) = ${ADMIN_KEY_ENV}"
          f"{'' if config.admin_key_from_env else ' (unset: a random key, not shown)'}; requests up to "
          f"{MAX_REQUEST_MIB} MiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    server = None
    stopping = {"signal": None}

    def on_signal(signum, _frame):
        if stopping["signal"] is None:
            stopping["signal"] = signum
            raise _Stop(signal.Signals(signum).name)

    try:
        _check_args(args)
        config = ServerConfig(args.repository, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port, host=args.host, tools=args.tools,
                              exit_on_error=not args.keep_going, expose=args.expose)
        if not is_loopback(config.host):
            print("warning: " + EXPOSED_WARNING.format(host=config.host),
                  file=sys.stderr, flush=True)
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        if args.export_if_empty is not None and not has_models(args.repository):
            models = args.export_if_empty or list(DEMO_MODELS)
            print(f"{args.repository} has no models: exporting {' '.join(models)} (target local)", flush=True)
            code = subprocess.call([sys.executable, "-m", "export", *models, "--target", "local",
                                    "--output", str(args.repository)])
            if code:
                return code
        server = TritonServer(config, log_path=args.log)
        restarts_left = args.restarts
        while True:
            server.start()
            server.wait_ready(args.ready_timeout)
            _report_ready(server)
            problem = None
            while problem is None:
                time.sleep(args.watch_interval)
                problem = server.check()
            server.stop(grace_s=10.0)
            if restarts_left <= 0:
                raise ServeError(problem)
            restarts_left -= 1
            print(f"error: {problem}: restarting tritonserver ({restarts_left} restart(s) left)", file=sys.stderr,
                  flush=True)
    except _Stop as stop:
        if server is None:
            print(f"interrupted ({stop})", file=sys.stderr, flush=True)
            return 130
        print(f"stopping tritonserver ({stop})", flush=True)
        return 0
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the clean stop
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            server.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
