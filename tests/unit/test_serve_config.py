"""Issue #13 items 1, 2, 5, 6 without a server: the argv serve builds (restricted APIs keyed by a secret, loopback),
one-line errors for bad ports and hosts, the documented request-size limit, and reading Triton's error lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from export.spec import SPECS
from serve.__main__ import main
from serve.logs import LogPump
from serve.security import ADMIN_KEY_ENV, ADMIN_KEY_HEADER, GRPC_ADMIN_KEY_HEADER, MAX_REQUEST_BYTES, admin_headers
from serve.server import ServerConfig, ServeError


def test_shared_memory_and_repository_apis_need_the_key(monkeypatch):
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    config = ServerConfig(Path("repo"))
    argv = config.argv()
    spec = f"shared-memory,model-repository:{ADMIN_KEY_HEADER}={config.admin_key}"
    assert f"--grpc-restricted-protocol={spec}" in argv and f"--http-restricted-api={spec}" in argv
    assert len(config.admin_key) >= 32 and config.admin_key != ServerConfig(Path("repo")).admin_key
    assert config.admin_key not in repr(config)
    assert ADMIN_KEY_ENV not in config.env()


def test_the_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(ADMIN_KEY_ENV, "a-key-chosen-by-the-operator")
    assert ServerConfig(Path("repo")).admin_key == "a-key-chosen-by-the-operator"
    assert admin_headers("k", "grpc") == {GRPC_ADMIN_KEY_HEADER: "k"}
    assert GRPC_ADMIN_KEY_HEADER == "triton-grpc-protocol-segserve-admin-key"
    assert admin_headers("k", "http") == {"segserve-admin-key": "k"}
    monkeypatch.setenv(ADMIN_KEY_ENV, "short")
    with pytest.raises(ServeError, match=rf"Bad {ADMIN_KEY_ENV}: use 16\.\.256 characters"):
        ServerConfig(Path("repo"))


def test_every_address_is_loopback_by_default():
    argv = ServerConfig(Path("repo")).argv()
    for flag in ("--http-address", "--grpc-address", "--metrics-address"):
        assert f"{flag}=127.0.0.1" in argv


@pytest.mark.parametrize("argv, message", [
    (["--http-port", "70000"], "Bad http port 70000: use 1..65535."),
    (["--grpc-port", "0"], "Bad grpc port 0: use 1..65535."),
    (["--http-port", "18000", "--grpc-port", "18000"],
     "The HTTP, gRPC and metrics ports must differ; got 18000, 18000, 8002."),
    (["--host", "0.0.0.0"], "Refusing to listen on 0.0.0.0: tritonserver 2.51 is only safe on loopback (127.0.0.1). "
                            "Pass --expose to override (read the warning it prints)."),
    (["--restarts", "-1"], "Bad --restarts -1: use 0 or more."),
])
def test_bad_ports_and_hosts_are_one_line_errors(argv, message, tmp_path, capsys):
    assert main(["--repository", str(tmp_path)] + argv) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


def test_exposing_warns_why_it_is_unsafe(tmp_path, capsys):
    assert main(["--repository", str(tmp_path / "empty"), "--host", "0.0.0.0", "--expose"]) == 1  # no models
    err = capsys.readouterr().err
    assert err.startswith("warning: tritonserver 2.51 predates the fixes of NVIDIA's 2025-2026 Triton security")
    assert f"request bodies to {MAX_REQUEST_BYTES // 2**20} MiB" in err and "error: No models in" in err


def test_the_request_size_limit_covers_every_registered_model_with_headroom():
    largest = max(sum(t.nbytes for t in s.inputs) * s.max_batch_size for s in SPECS.values())
    assert MAX_REQUEST_BYTES == 19 * 2**20  # Mask R-CNN at its max batch: 8 x 1,920,000 B, + 25 %
    assert largest * 1.25 <= MAX_REQUEST_BYTES < largest * 1.25 + 2**20


LOG = b"""I1129 05:36:24.889699 13187 server.cc:241] "some info"
E1129 05:36:24.889699 13187 server.cc:241] "CudaDriverHelper has not been initialized."
E1129 05:36:28.121384 13187 model_lifecycle.cc:642] "failed to load 'unet' version 1: Internal: InvalidProtobuf: \
[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from /r/unet/1/model.onnx failed:Protobuf parsing failed.\\n\\n\
At:\\n  /x/onnxruntime_inference_collection.py(753): _create_inference_session"
Timeout 20: Found 1 live models and 0 in-flight non-inference requests
"""


def test_the_log_names_the_model_that_failed_and_why():
    sink = io.StringIO()
    pump = LogPump(io.BytesIO(LOG), sink)
    pump.join()
    assert sink.getvalue() == LOG.decode()  # every line goes on to the terminal or file
    assert pump.summary() == ("model `unet` failed to load: Internal: InvalidProtobuf: [ONNXRuntimeError] : 7 : "
                              "INVALID_PROTOBUF : Load model from /r/unet/1/model.onnx failed:Protobuf parsing failed.")
