#!/usr/bin/env python3
"""Copy the version table export/data/releases.json into the chart (charts/segserve/releases.json).

The chart reads the Triton <-> TensorRT builder pairing from its own copy (Helm's .Files.Get reads only files inside
the chart); this keeps one source of truth. `--check` exits 1 when the copy is stale (used by the tests)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "export" / "data" / "releases.json"
COPY = ROOT / "charts" / "segserve" / "releases.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the chart copy differs, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        if not COPY.is_file() or COPY.read_bytes() != SOURCE.read_bytes():
            print(f"error: {COPY.relative_to(ROOT)} is stale: run scripts/sync_releases.py", file=sys.stderr)
            return 1
        return 0
    tmp = COPY.with_suffix(".json.tmp")
    tmp.write_bytes(SOURCE.read_bytes())
    tmp.replace(COPY)
    return 0


if __name__ == "__main__":
    sys.exit(main())
