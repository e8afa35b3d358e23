"""Regenerate the Parameters section of charts/segserve/README.md from the `## @param` comments in values.yaml.

    python scripts/chart_readme.py          # rewrite the README section
    python scripts/chart_readme.py --check  # exit 1 when the README is out of date (tests run this)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "segserve"
BEGIN, END = "<!-- PARAMETERS:BEGIN -->", "<!-- PARAMETERS:END -->"
PARAM = re.compile(r"^\s*## @param (\S+) (.+)$")
SECTION = re.compile(r"^## @section (.+)$")


def lookup(values: dict, dotted: str):
    node = values
    for part in dotted.split("."):
        node = node[part]
    return node


def table(values_text: str) -> str:
    values = yaml.safe_load(values_text)
    out: list[str] = []
    for line in values_text.splitlines():
        if m := SECTION.match(line):
            out += ["", f"### {m.group(1)}", "", "| Name | Description | Default |", "| --- | --- | --- |"]
        elif m := PARAM.match(line):
            default = yaml.safe_dump(lookup(values, m.group(1)), default_flow_style=True).strip()
            default = default.removesuffix("...").strip().replace("|", "\\|")
            out.append(f"| `{m.group(1)}` | {m.group(2).replace('|', '/')} | `{default}` |")
    return "\n".join(out).strip()


def render(readme: str, values_text: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table(values_text)}\n{END}{tail}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="only check; exit 1 when out of date")
    args = p.parse_args(argv)
    readme_path = CHART / "README.md"
    readme = readme_path.read_text()
    fresh = render(readme, (CHART / "values.yaml").read_text())
    if args.check:
        if fresh != readme:
            print("charts/segserve/README.md is out of date: run python scripts/chart_readme.py", file=sys.stderr)
            return 1
        return 0
    readme_path.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
