"""Load-test smoke: the real perf_analyzer against the real local tritonserver for a few seconds on the smallest
model, as `make perf` runs it. No speed thresholds: zero failed requests, the CSV columns, the PNG."""

from __future__ import annotations

import csv
import secrets

import pytest

from support import TOOLS, copy_repository, running_triton

pytestmark = pytest.mark.integration

if not (TOOLS / "triton" / ".complete").exists():
    pytest.skip("tritonserver not fetched: run `make tools`", allow_module_level=True)
if not (TOOLS / "perf_analyzer" / ".complete").exists():
    pytest.skip("perf_analyzer not fetched: run `make tools` (scripts/fetch-tools.sh perf)", allow_module_level=True)

MODEL = "deeplabv3_mobilenet"
ADMIN_KEY = secrets.token_hex(8)
# Three windows per level, long enough for requests to complete on a busy machine; stability 100% accepts any three
# windows: this checks the pipeline, not speed.
# A smoke test, not a measurement: windows may disagree widely on a busy 2-core machine (seen failing at 100%).
QUICK = ["--window-ms", "2500", "--stability", "1000", "--max-trials", "5"]


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    """The small exports on a real tritonserver whose shared-memory API needs the admin key (contract 3)."""
    # A private copy: the session's repository is shared and must stay unchanged (tests/conftest.py).
    repository = copy_repository(exported["_repository"], tmp_path_factory.mktemp("perf") / "model_repository")
    # serve restricts shared memory behind the key (issue #13).
    with running_triton(repository, tmp_path_factory.mktemp("triton") / "tritonserver.log",
                        admin_key=ADMIN_KEY) as triton:
        yield triton


def test_load_test_writes_csv_and_png_with_no_failed_request(server, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from loadtest.__main__ import main
    from loadtest.report import REQUIRED
    from loadtest.target import statistics

    monkeypatch.setenv("SEGSERVE_ADMIN_KEY", ADMIN_KEY)
    before = statistics(server.grpc_url, MODEL)
    code = main(["run", "--model", MODEL, "--url", server.grpc_url, "--concurrency", "1,2", "--request-rate", "4",
                 "--shm-concurrency", "2", "--out", str(tmp_path), *QUICK])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    after = statistics(server.grpc_url, MODEL)
    assert after["fail"] == before["fail"]
    assert after["success"] > before["success"]
    assert "0 failed" in out

    folder = tmp_path / MODEL
    with (folder / f"{MODEL}.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert set(REQUIRED) <= set(reader.fieldnames)
    assert [(r["mode"], r["load"], r["level"]) for r in rows] == [
        ("grpc", "concurrency", "1"), ("grpc", "concurrency", "2"), ("grpc", "request_rate", "4"),
        ("system-shm", "concurrency", "2")]
    assert all(float(r["Inferences/Second"]) > 0 and float(r["Server Compute Infer"]) > 0 for r in rows)
    with Image.open(folder / f"{MODEL}.png") as png:
        assert png.format == "PNG" and png.width > 600
    # The input data are the sample photos letterboxed to the served size, not random bytes.
    assert (folder / "input_data.json").stat().st_size > 2 * 128 * 128 * 3


def test_shared_memory_without_the_admin_key_is_a_one_line_error(server, tmp_path, monkeypatch, capsys):
    from loadtest.__main__ import main

    monkeypatch.delenv("SEGSERVE_ADMIN_KEY", raising=False)
    code = main(["run", "--model", MODEL, "--url", server.grpc_url, "--concurrency", "1", "--shared-memory",
                 "system", "--out", str(tmp_path), *QUICK])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "restricted" in err[0] and "SEGSERVE_ADMIN_KEY" in err[0]


def test_auto_mode_without_the_key_keeps_the_network_results(server, tmp_path, monkeypatch, capsys):
    """`make perf` against a restricted `make serve` with no key in the environment still leaves CSV and PNG."""
    from loadtest.__main__ import main

    monkeypatch.delenv("SEGSERVE_ADMIN_KEY", raising=False)
    assert main(["run", "--model", MODEL, "--url", server.grpc_url, "--concurrency", "1", "--out", str(tmp_path),
                 *QUICK]) == 0
    out = capsys.readouterr().out
    assert "shared-memory run skipped" in out and "SEGSERVE_ADMIN_KEY" in out
    assert (tmp_path / MODEL / f"{MODEL}.png").is_file()
    with (tmp_path / MODEL / f"{MODEL}.csv").open(newline="") as f:
        assert [r["mode"] for r in csv.DictReader(f)] == ["grpc"]


def test_model_not_served_lists_the_served_ones(server, tmp_path, monkeypatch, capsys):
    from loadtest.__main__ import main

    monkeypatch.setenv("SEGSERVE_ADMIN_KEY", ADMIN_KEY)  # the repository index may be restricted too

    assert main(["run", "--model", "unett", "--url", server.grpc_url, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "`unett` is not served READY" in err and MODEL in err


def test_input_data_command_writes_the_served_input(server, tmp_path, capsys):
    import json

    from loadtest.__main__ import main

    target = tmp_path / "data.json"
    assert main(["input-data", "--model", MODEL, "--url", server.grpc_url, "--out", str(target)]) == 0
    entry = json.loads(target.read_text())["data"][0]["IMAGE"]
    assert entry["shape"] == [128, 128, 3]
