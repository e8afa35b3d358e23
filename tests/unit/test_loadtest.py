"""loadtest without a server: perf_analyzer's argv, option checks, input data, CSV handling, error lines."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from loadtest.analyzer import Load, Measurement, PerfAnalyzer, PerfRun, failure_reason, find_perf_analyzer
from loadtest.errors import LoadTestError

TOOL = PerfAnalyzer(Path("/opt/pa/perf_analyzer"), Path("/opt/pa/lib"))


def run_for(**kw) -> PerfRun:
    base = dict(tool=TOOL, model="unet", url="h:8001", input_data=Path("d.json"), csv=Path("o.csv"),
                load=Load("concurrency", 4))
    return PerfRun(**{**base, **kw})


def test_argv_is_grpc_with_real_data_and_a_verbose_csv():
    argv = run_for().argv()
    assert argv[:5] == ["/opt/pa/perf_analyzer", "-m", "unet", "-u", "h:8001"]
    assert argv[argv.index("-i") + 1] == "grpc"
    assert "--input-data=d.json" in argv and "--concurrency-range=4:4" in argv
    assert argv[argv.index("-f") + 1] == "o.csv" and "--verbose-csv" in argv
    assert not any(a.startswith("--shared-memory") for a in argv)


def test_shared_memory_run_sizes_outputs_and_sends_headers():
    argv = run_for(shared_memory="system", output_shared_memory_bytes=270400,
                   headers=(("triton-grpc-protocol-segserve-admin-key", "k"),)).argv()
    assert "--shared-memory=system" in argv and "--output-shared-memory-size=270400" in argv
    assert argv[argv.index("-H") + 1] == "triton-grpc-protocol-segserve-admin-key:k"


def test_header_values_are_hidden_in_the_logged_command():
    shown = run_for(headers=(("key", "secret"),))._shown_argv()
    assert "key:***" in shown and not any("secret" in a for a in shown)


def test_request_rate_level_argv():
    assert Load("request_rate", 2.5).argv() == ["--request-rate-range=2.5:2.5"]


@pytest.mark.parametrize("kw, match", [
    ({"shared_memory": "cuda"}, "Unknown shared memory `cuda`. Available: none, system"),
    ({"compression": "zstd"}, "Unknown gRPC compression `zstd`"),
    ({"shared_memory": "system"}, "output region size"),
])
def test_bad_run_options_are_named(kw, match):
    with pytest.raises(LoadTestError, match=match):
        run_for(**kw)


@pytest.mark.parametrize("load, match", [(("concurrency", 0), "Bad concurrency 0"),
                                         (("concurrency", 1.5), "Bad concurrency 1.5"),
                                         (("request_rate", -1), "Bad request rate -1"),
                                         (("burst", 1), "Unknown load kind `burst`")])
def test_bad_load_levels_are_named(load, match):
    with pytest.raises(LoadTestError, match=match):
        Load(*load)


def test_bad_measurement_is_named():
    with pytest.raises(LoadTestError, match="at least 3"):
        Measurement(max_trials=2)
    with pytest.raises(LoadTestError, match=r"Bad stability 1001%: use 1\.\.1000"):
        Measurement(stability_percent=1001)
    with pytest.raises(LoadTestError, match=r"Bad measurement window 99 ms"):
        Measurement(window_ms=99)


def test_missing_perf_analyzer_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LoadTestError, match=r"perf_analyzer is missing .*scripts/fetch-tools.sh perf"):
        find_perf_analyzer(tools=tmp_path)
    with pytest.raises(LoadTestError, match="is not an executable file"):
        find_perf_analyzer(tmp_path / "nope")


def test_cli_reports_a_missing_perf_analyzer_in_one_line(tmp_path, capsys):
    from loadtest.__main__ import main

    assert main(["run", "--model", "unet", "--perf-analyzer", str(tmp_path / "pa")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an executable file" in err[0]


def test_unreachable_server_is_named(capsys):
    from loadtest.__main__ import main
    from support import free_port

    url = f"127.0.0.1:{free_port()}"
    assert main(["input-data", "--model", "unet", "--url", url, "--timeout", "1", "--out", "x.json"]) == 1
    err = capsys.readouterr().err
    assert f"Cannot reach Triton at grpc://{url}" in err and len(err.strip().splitlines()) == 1


def test_failure_reason_prefers_perf_analyzers_error_line(tmp_path):
    log = tmp_path / "log"
    log.write_text("Request concurrency: 1\nerror: Unable to init infer data manager: This protocol is restricted, "
                   "expecting header 'triton-grpc-protocol-segserve-admin-key'\n\nUnable to unregister all shared "
                   "memory regions\n")
    reason = failure_reason(log)
    assert reason.startswith("error: Unable to init") and "SEGSERVE_ADMIN_KEY" in reason
    log.write_text("Failed to obtain stable measurement within 3 measurement windows for concurrency 1.\n"
                   "Failed to obtain stable measurement.\n")
    assert "--window-ms" in failure_reason(log)


def test_input_data_is_the_client_preprocessing_of_each_photo(tmp_path):
    from PIL import Image

    from client.preprocess import prepare
    from loadtest.inputs import input_data, sample_photos

    rgb = np.random.default_rng(0).integers(0, 255, (90, 160, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    photos = sample_photos()
    assert len(photos) >= 2 and all(p.is_file() for p in photos)
    document = input_data([tmp_path / "a.png", *photos], "IMAGE", 64, 96)
    assert len(document["data"]) == 1 + len(photos)
    first = document["data"][0]["IMAGE"]
    assert first["shape"] == [64, 96, 3]
    sent = np.frombuffer(base64.b64decode(first["content"]["b64"]), np.uint8).reshape(64, 96, 3)
    np.testing.assert_array_equal(sent, prepare(tmp_path / "a.png", 64, 96)[0])
    assert sent[0, 0].tolist() != [0, 0, 0]  # letterbox padding, not an empty canvas
    json.dumps(document)


def test_unreadable_image_is_a_load_test_error(tmp_path):
    from loadtest.inputs import input_data

    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(LoadTestError, match="bad.jpg"):
        input_data([tmp_path / "bad.jpg"], "IMAGE", 64, 64)


PA_CSV = ("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
          "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency,"
          "Avg latency,request/response,response wait\n"
          "2,2.49341,107,3556,83741,508,690704,1760,3,793145,920858,1048198,1060100,780382,110,780214\n")


def test_csv_rows_merge_and_plot(tmp_path):
    from loadtest.report import plot, read_merged_csv, read_perf_csv, table, write_merged_csv

    (tmp_path / "pa.csv").write_text(PA_CSV)
    (row,) = read_perf_csv(tmp_path / "pa.csv", "grpc")
    assert (row.load, row.level, row.throughput) == ("concurrency", 2, 2.49341)
    assert row.p99_ms == pytest.approx(1060.1) and row.server_ms["Server Queue"] == pytest.approx(83.741)
    assert row.outside_server_ms == pytest.approx(780.382 - 83.741 - 0.508 - 690.704 - 1.760)
    merged = write_merged_csv([row], tmp_path / "m.csv")
    assert merged.read_text().splitlines()[0].startswith("mode,load,level,Inferences/Second,")
    again = read_merged_csv(merged)
    assert again[0].throughput == row.throughput and "c=2" in table(again)
    png = plot(again, tmp_path / "m.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_command_takes_merged_or_perf_analyzer_csv(tmp_path, capsys):
    from loadtest.__main__ import main

    (tmp_path / "pa.csv").write_text(PA_CSV)
    assert main(["plot", str(tmp_path / "pa.csv")]) == 0
    assert (tmp_path / "pa.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(tmp_path / "none.csv")]) == 1
    assert "No such CSV" in capsys.readouterr().err


def test_a_csv_without_perf_analyzer_columns_is_refused(tmp_path):
    from loadtest.report import read_perf_csv

    (tmp_path / "x.csv").write_text("Concurrency,Inferences/Second\n1,2\n")
    with pytest.raises(LoadTestError, match="missing columns p50 latency"):
        read_perf_csv(tmp_path / "x.csv", "grpc")


@pytest.mark.parametrize("url, local", [("localhost:8001", True), ("127.0.0.1:1", True), ("[::1]:8001", True),
                                        ("192.0.2.1:8001", False)])
def test_same_host_detection(url, local):
    from loadtest.target import is_same_host

    assert is_same_host(url) is local


def test_shared_memory_run_defaults_to_lowest_and_highest_concurrency():
    from loadtest.sweep import Plan

    assert [load.value for load in Plan(concurrency=(1, 2, 4, 8)).shm_loads()] == [1, 8]
    with pytest.raises(LoadTestError, match="Nothing to run"):
        Plan(concurrency=(), request_rates=())


def test_admin_key_travels_under_tritons_grpc_prefix(monkeypatch):
    from loadtest.sweep import admin_headers

    monkeypatch.delenv("SEGSERVE_ADMIN_KEY", raising=False)
    assert admin_headers() == ()
    monkeypatch.setenv("SEGSERVE_ADMIN_KEY", "k")
    assert admin_headers() == (("triton-grpc-protocol-segserve-admin-key", "k"),)


def test_help_lists_every_command(capsys):
    from loadtest.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("run", "input-data", "plot"))


def test_loadtest_imports_without_torch_or_onnxruntime():
    import subprocess
    import sys

    code = ("import importlib, pkgutil, sys, loadtest\n"
            "for info in pkgutil.walk_packages(loadtest.__path__, 'loadtest.'):\n"
            "    importlib.import_module(info.name)\n"
            "loaded = {m.split('.')[0] for m in sys.modules}\n"
            "heavy = {'torch', 'onnxruntime', 'onnx', 'tensorrt', 'matplotlib'} & loaded\n"
            "print(sorted(heavy))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_regions_left_by_a_failed_shared_memory_run_are_removed():
    import os
    import secrets
    import time

    names = (f"SEGSERVE_TEST_{secrets.token_hex(4)}", f"SEGSERVE_TEST_{secrets.token_hex(4)}")
    fresh, old = (Path("/dev/shm") / n for n in names)
    since = time.time()
    fresh.write_bytes(b"x")
    old.write_bytes(b"x")
    os.utime(old, (since - 60, since - 60))
    try:
        run_for(tensor_names=names)._remove_leftover_regions(since - 1)
        assert not fresh.exists() and old.exists()  # only what this run created
    finally:
        old.unlink(missing_ok=True)
        fresh.unlink(missing_ok=True)


def test_the_fetched_quokka_photo_joins_the_samples(monkeypatch, tmp_path):
    from export.importer.builtin import asset_path
    from loadtest.inputs import QUOKKA, sample_photos

    path, _ = asset_path(*QUOKKA)
    if not path.is_file():
        pytest.skip("quokka not fetched: scripts/fetch-tools.sh quokka")
    assert path in sample_photos()
    monkeypatch.setenv("SEGSERVE_TOOLS", str(tmp_path))  # not fetched there: only matplotlib's photos
    assert all("quokka" not in p.name for p in sample_photos())
