"""``python -m serve``: run the real local tritonserver in the foreground until Ctrl-C / SIGTERM.

    python -m serve --repository model_repository            # Triton's default ports 8000/8001/8002
    python -m serve --grpc-port 9001 --export-if-empty unet  # export unet first if the repository is empty
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from export.spec import DEMO_MODELS
from serve.server import DEFAULT_TOOLS, ServerConfig, ServeError, TritonServer



def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serve", description="Run the real local tritonserver (CPU build "
                                "with the python backend) on a segserve model repository.")
    p.add_argument("--repository", type=Path, default=Path("model_repository"), help="model repository folder")
    p.add_argument("--http-port", type=int, default=8000, help="HTTP/REST port (default: %(default)s)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default: %(default)s)")
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--tools", type=Path, default=DEFAULT_TOOLS, help="folder scripts/fetch-tools.sh filled")
    p.add_argument("--export-if-empty", nargs="*", metavar="MODEL", default=None,
                   help=f"export these models (target local) first when the repository has none "
                        f"(no names: {' '.join(DEMO_MODELS)})")
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for readiness")
    p.add_argument("--log", type=Path, help="write the server log here instead of the terminal")
    return p


def has_models(repository: Path) -> bool:
    return repository.is_dir() and any(repository.glob("*/config.pbtxt"))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.export_if_empty is not None and not has_models(args.repository):
            models = args.export_if_empty or list(DEMO_MODELS)
            print(f"{args.repository} has no models: exporting {' '.join(models)} (target local)", flush=True)
            code = subprocess.call([sys.executable, "-m", "export", *models, "--target", "local",
                                    "--output", str(args.repository)])
            if code:
                return code
        config = ServerConfig(args.repository, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port, host=args.host, tools=args.tools)
        server = TritonServer(config, log_path=args.log)
        stop = {"signal": None}

        def on_signal(signum, _frame):
            stop["signal"] = signum

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        with server:
            server.wait_ready(args.ready_timeout)
            print(f"Triton ready: HTTP http://{server.http_url}  gRPC {server.grpc_url}  metrics "
                  f"http://{config.host}:{config.metrics_port}/metrics  (Ctrl-C stops)", flush=True)
            while stop["signal"] is None and server.process is not None and server.process.poll() is None:
                time.sleep(0.2)
            if stop["signal"] is None:
                raise ServeError(f"tritonserver exited unexpectedly with code {server.process.returncode}.")
            print(f"stopping tritonserver ({signal.Signals(stop['signal']).name})", flush=True)
        return 0
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
