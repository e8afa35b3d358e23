"""Mutation score of the pure modules: ``make mutation`` (not part of ``make test``).

Runs mutmut (configured in pyproject.toml ``[tool.mutmut]``: the modules to mutate and their fast unit tests), then
prints the kill rate per module from mutmut's result files. Kill rate = (killed + timed out) / (mutants - skipped),
mutmut's own score: a mutant no test reaches counts as surviving.

    python scripts/mutation.py                 # run, then report
    python scripts/mutation.py --report-only   # report the last run (mutants/)
    python scripts/mutation.py --fail-under 90 # exit 1 when a module scores lower
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def report(mutants: Path) -> dict[str, Counter]:
    """Mutants per status (mutmut's own names: killed, timeout, survived, no tests, skipped, ...) per module."""
    from mutmut.stats import status_by_exit_code  # mutmut's exit code -> status table, not restated here

    counts: dict[str, Counter] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        if codes:
            module = str(meta.relative_to(mutants)).removesuffix(".meta")
            counts[module] = Counter(status_by_exit_code[code] for code in codes.values())
    return counts


def killed(c: Counter) -> int:
    return c["killed"] + c["timeout"]


def rate(c: Counter) -> float:
    tested = sum(c.values()) - c["skipped"]
    return 100.0 * killed(c) / tested if tested else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true", help="print the last run's result without running")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2, help="parallel mutant runs")
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 if a module's kill rate is lower")
    args = parser.parse_args(argv)
    mutants = ROOT / "mutants"
    if not args.report_only:
        mutmut = Path(sys.executable).with_name("mutmut")
        if not mutmut.is_file():
            print(f"error: mutmut is not installed next to {sys.executable}: pip install -e '.[mutation]'",
                  file=sys.stderr)
            return 1
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run([str(mutmut), "run", "--max-children", str(args.max_children)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL)
        if proc.returncode != 0:
            print(f"error: mutmut run exited with {proc.returncode}", file=sys.stderr)
            return 1
    counts = report(mutants)
    if not counts:
        print(f"error: no mutmut results under {mutants}", file=sys.stderr)
        return 1
    print(f"{'module':32} {'mutants':>8} {'killed':>7} {'survived':>9} {'no tests':>9} {'kill rate':>10}")
    total = Counter()
    for module, c in counts.items():
        total += c
        print(f"{module:32} {sum(c.values()):8d} {killed(c):7d} {c['survived']:9d} {c['no tests']:9d} "
              f"{rate(c):9.1f}%")
    print(f"{'all':32} {sum(total.values()):8d} {killed(total):7d} {total['survived']:9d} "
          f"{total['no tests']:9d} {rate(total):9.1f}%")
    if args.fail_under is not None:
        low = [m for m, c in counts.items() if rate(c) < args.fail_under]
        if low:
            print(f"below {args.fail_under:.0f}%: {', '.join(low)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
