"""The real tritonserver (CPU, python backend) serving the small exports; results through gRPC must equal
in-process PyTorch on the same image, with the parity thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support import TOOLS, free_port

pytestmark = pytest.mark.integration

if not (TOOLS / "triton" / ".complete").exists():
    pytest.skip("tritonserver not fetched: run `make tools`", allow_module_level=True)


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory):
    from serve.server import ServerConfig, TritonServer

    config = ServerConfig(exported["_repository"], http_port=free_port(), grpc_port=free_port(),
                          metrics_port=free_port())
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    with TritonServer(config, log_path=log) as triton:
        triton.wait_ready(300)
        yield triton
    assert triton.process is None


def sample(height=300, width=420, seed=11):
    from export.samples import synthetic_image

    return synthetic_image(height, width, seed=seed)


MODELS = ["unet", "deeplabv3", "deeplabv3_mobilenet", "maskrcnn"]


@pytest.mark.parametrize("name", MODELS)
def test_served_result_equals_in_process_pytorch(server, exported, name):
    from client import Segmenter
    from client.api import detections_to_original
    from client.postprocess import unletterbox_mask
    from export.compare import compare_outputs
    from export.parity import run_eager

    item = exported[name]
    image = sample()
    with Segmenter(server.grpc_url, name) as seg:
        assert seg.info.task == item.spec.task and seg.info.class_names == item.spec.class_names
        canvas, box = seg.prepare(image)
        served = seg.infer(canvas[None])
        eager = run_eager(item.module, item.spec, canvas[None])
        agreement = compare_outputs(item.spec.task, eager, served, max_detections=item.spec.max_detections)
        assert agreement.passed, agreement.summary
        result = seg(image)
    if item.spec.task == "semantic":
        assert result.mask.shape == image.shape[:2]
        expected = unletterbox_mask(eager["MASK"][0], box)
        assert np.mean(result.mask == expected) >= 0.999
    else:
        assert agreement.matched > 0
        expected = detections_to_original(eager, box, item.spec.class_names)
        assert result.masks.shape == (len(expected), *image.shape[:2])
        assert len(result) == len(expected) and len(result) > 0


def test_http_gives_the_same_answer_as_grpc(server):
    from client import Segmenter

    image = sample(seed=3)
    with Segmenter(server.grpc_url, "deeplabv3_mobilenet") as grpc_seg, \
            Segmenter(server.http_url, "deeplabv3_mobilenet", protocol="http") as http_seg:
        np.testing.assert_array_equal(grpc_seg.segment(image).mask, http_seg.segment(image).mask)


def test_dynamic_batching_answers_every_request(server, exported):
    """Concurrent requests may be batched together by Triton; each must get its own image's mask."""
    from concurrent.futures import ThreadPoolExecutor

    from client import Segmenter
    from export.parity import run_eager

    item = exported["deeplabv3_mobilenet"]
    images = [sample(seed=s) for s in range(6)]
    with Segmenter(server.grpc_url, "deeplabv3_mobilenet") as seg:
        canvases = [seg.prepare(im)[0] for im in images]
        with ThreadPoolExecutor(6) as pool:
            served = list(pool.map(lambda c: seg.infer(c[None])["MASK"][0], canvases))
    for canvas, mask in zip(canvases, served):
        assert np.mean(run_eager(item.module, item.spec, canvas[None])["MASK"][0] == mask) >= 0.999


def test_cli_writes_overlays_and_reports(server, tmp_path, capsys):
    from PIL import Image

    from client.__main__ import main

    Image.fromarray(sample()).save(tmp_path / "street.png")
    for model in ("deeplabv3_mobilenet", "maskrcnn"):
        assert main(["segment", "--model", model, str(tmp_path / "street.png"), "--out", str(tmp_path / "out"),
                     "--url", server.grpc_url]) == 0
        overlay = Image.open(tmp_path / "out" / f"street.{model}.png")
        assert overlay.size == (420, 300)
    out = capsys.readouterr().out
    assert "street.png: 420x300 deeplabv3_mobilenet" in out and "instances" in out


def test_unknown_model_lists_the_served_ones(server, tmp_path, capsys):
    from client.__main__ import main
    from serve.security import GRPC_ADMIN_KEY_HEADER

    # serve restricts the repository index (issue #13): listing the served models takes the admin key
    assert main(["segment", "--model", "unett", str(tmp_path / "x.png"), "--url", server.grpc_url,
                 "--header", f"{GRPC_ADMIN_KEY_HEADER}: {server.config.admin_key}"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: Unknown model `unett` at grpc://{server.grpc_url}. "
                   "Served: deeplabv3, deeplabv3_mobilenet, maskrcnn, unet.")


def test_unreadable_image_is_one_line_and_exit_1(server, tmp_path, capsys):
    from client.__main__ import main

    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert main(["segment", "--model", "unet", str(tmp_path / "broken.jpg"), "--url", server.grpc_url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot read image") and "broken.jpg" in err and err.count("\n") == 1


def test_unreachable_server_names_the_url(capsys):
    from client.__main__ import main

    port = free_port()
    assert main(["segment", "--model", "unet", "x.png", "--url", f"127.0.0.1:{port}", "--timeout", "1"]) == 1
    assert f"Cannot reach Triton at grpc://127.0.0.1:{port}" in capsys.readouterr().err


def test_a_bad_request_gets_an_error_and_the_server_keeps_serving(server):
    import tritonclient.grpc as grpcclient

    from client import Segmenter

    client = grpcclient.InferenceServerClient(server.grpc_url)
    wrong = np.zeros((1, 64, 64, 3), np.uint8)  # not the model's size
    tensor = grpcclient.InferInput("IMAGE", list(wrong.shape), "UINT8")
    tensor.set_data_from_numpy(wrong)
    with pytest.raises(Exception, match=r"unexpected shape|expected"):
        client.infer("unet", [tensor])
    with Segmenter(server.grpc_url, "unet") as seg:
        assert seg.segment(sample()).mask.shape == (300, 420)
    assert server.is_ready()


def test_port_in_use_is_a_clear_error(exported):
    from serve.server import ServerConfig, ServeError, TritonServer
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = ServerConfig(exported["_repository"], http_port=free_port(), grpc_port=port,
                              metrics_port=free_port())
        with pytest.raises(ServeError, match=rf"Port {port} \(grpc\) on 127.0.0.1 is already in use"):
            TritonServer(config).start()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_serve_stops_cleanly_on_signal_without_orphans(exported, signum):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen([sys.executable, "-m", "serve", "--repository", str(exported["_repository"]),
                             "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
                             "--metrics-port", str(ports[2]), "--log", os.devnull],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert "Triton ready" in proc.stdout.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/health/ready", timeout=5) as r:
            assert r.status == 200
        proc.send_signal(getattr(signal, signum))
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)
    leftovers = subprocess.run(["pgrep", "-f", f"--grpc-port={ports[1]}"], capture_output=True, text=True).stdout
    assert leftovers.strip() == "", "tritonserver outlived `python -m serve`"


def test_calling_the_wrong_task_says_which_call_to_use(server):
    from client import ClientError, Segmenter

    with Segmenter(server.grpc_url, "maskrcnn") as seg:
        with pytest.raises(ClientError, match=r"`maskrcnn` does instance segmentation: use detect\(\)\."):
            seg.segment(sample())


def test_serve_exports_first_when_the_repository_is_empty(tmp_path):
    """`make serve` on a fresh checkout: no models yet, so they are exported (target local) before Triton starts."""
    import signal
    import subprocess
    import sys
    import urllib.request

    repo = tmp_path / "model_repository"
    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen([sys.executable, "-m", "serve", "--repository", str(repo), "--export-if-empty",
                             "deeplabv3_mobilenet", "--http-port", str(ports[0]), "--grpc-port", str(ports[1]),
                             "--metrics-port", str(ports[2]), "--log", str(tmp_path / "triton.log")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while not lines or "Triton ready" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, f"python -m serve ended before Triton was ready: {lines}"
            lines.append(line)
        assert "has no models: exporting deeplabv3_mobilenet" in lines[0]
        url = f"http://127.0.0.1:{ports[0]}/v2/models/deeplabv3_mobilenet/ready"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
        assert (repo / "deeplabv3_mobilenet" / "config.pbtxt").is_file()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_charts_helm_test_script_passes_against_a_real_triton(server, tmp_path):
    """The `helm test` pod's script, rendered by the real helm, run against the real server: every model answers."""
    import subprocess
    import sys

    import yaml

    from serve.security import GRPC_ADMIN_KEY_HEADER

    helm = TOOLS / "helm" / "helm"
    if not helm.is_file():
        pytest.skip("helm not fetched")
    chart = Path(__file__).resolve().parents[2] / "charts" / "segserve"
    rendered = subprocess.run([str(helm), "template", "seg", str(chart), "--show-only",
                               "templates/tests/test-inference.yaml"], capture_output=True, text=True, check=True)
    (config_map,) = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "ConfigMap"]
    script = tmp_path / "test_inference.py"
    script.write_text(config_map["data"]["test_inference.py"])
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={"TRITON_GRPC_URL": server.grpc_url, "MODELS": "", "PATH": "/usr/bin:/bin",
                               # serve restricts the repository index the script lists (issue #13)
                               "SEGSERVE_ADMIN_HEADER": GRPC_ADMIN_KEY_HEADER,
                               "SEGSERVE_ADMIN_KEY": server.config.admin_key})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == f"ok: 4 model(s) answered at {server.grpc_url}"
