"""The real tritonserver (CPU, python backend) serving the small exports; results through gRPC must equal
in-process PyTorch on the same image, with the parity thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from support import ROOT, copy_repository, free_port, running_triton

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(exported, triton_tools, tmp_path_factory):
    """The real tritonserver on a private copy of the session's repository (the python backend writes beside
    model.py; the shared repository stays untouched)."""
    from serve.server import port_in_use

    repo = copy_repository(exported["_repository"], tmp_path_factory.mktemp("served") / "model_repository")
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    with running_triton(repo, log) as triton:
        process = triton.process
        yield triton
    config = triton.config
    # Stopped for real: the process has exited after the SIGTERM, cleanly, and its ports are free again.
    assert process.poll() is not None, "tritonserver still running after stop()"
    assert process.returncode == 0, f"tritonserver exited with {process.returncode}; log {log}"
    busy = [port for port in config.ports.values() if port_in_use(config.host, port)]
    assert not busy, f"ports still bound after stop(): {busy}"


def sample(height=300, width=420, seed=11):
    from export.samples import synthetic_image

    return synthetic_image(height, width, seed=seed)


def hand_letterbox(height, width, model):
    """(resized h, w, top, left) of an image in a square model, computed here (not by the client)."""
    scale = min(model / height, model / width)
    nh, nw = round(height * scale), round(width * scale)
    return nh, nw, (model - nh) // 2, (model - nw) // 2


def unmatched_report(eager, served):
    """The detections without a partner, for a failure message."""
    from export.compare import box_iou, detections_from_outputs

    if "BOXES" not in eager:
        return ""
    a, b = detections_from_outputs(eager), detections_from_outputs(served)
    iou = box_iou(a["boxes"], b["boxes"])
    lines = []
    for name, x, other, m in (("eager", a, b, iou), ("served", b, a, iou.T)):
        for k in np.nonzero(m.max(axis=1) <= 0.99)[0]:
            j = int(m[k].argmax())
            lines.append(f"{name} #{k} label {x['labels'][k]} score {x['scores'][k]:.6f} box {x['boxes'][k].round(2)}; "
                         f"nearest #{j} IoU {m[k, j]:.3f} label {other['labels'][j]} score {other['scores'][j]:.6f}")
    return "\n" + "\n".join(lines)


def tie_positions(out_size, in_size):
    """Output indices whose pixel centre maps exactly onto a border between two source pixels."""
    centre = (np.arange(out_size) + 0.5) * in_size / out_size
    return np.isclose(centre, np.round(centre), atol=1e-9)


MODELS = ["unet", "deeplabv3", "deeplabv3_mobilenet", "maskrcnn"]


@pytest.mark.parametrize("name", MODELS)
def test_served_result_equals_in_process_pytorch(server, exported, name):
    """Served (client + Triton + ONNX Runtime) vs eager PyTorch, with the geometry checked independently of the
    client: the letterbox rectangle is computed here and the eager answer is mapped back with PIL, not with the
    client's un-letterbox functions."""
    from PIL import Image

    from client import Segmenter
    from export.compare import compare_detections, compare_outputs, detections_from_outputs
    from export.parity import run_eager

    item = exported[name]
    image = sample()
    size = item.spec.height
    nh, nw, top, left = hand_letterbox(*image.shape[:2], size)
    with Segmenter(server.grpc_url, name) as seg:
        assert seg.info.task == item.spec.task and seg.info.class_names == item.spec.class_names
        canvas, box = seg.prepare(image)
        assert (box.resized_height, box.resized_width, box.pad_top, box.pad_left) == (nh, nw, top, left)
        served = seg.infer(canvas[None])
        eager = run_eager(item.module, item.spec, canvas[None])
        agreement = compare_outputs(item.spec.task, eager, served, max_detections=item.spec.max_detections,
                                    score_threshold=item.spec.score_threshold)
        assert agreement.passed, agreement.summary + unmatched_report(eager, served)
        result = seg(image)
    if item.spec.task == "semantic":
        crop = eager["MASK"][0][top:top + nh, left:left + nw]
        expected = np.asarray(Image.fromarray(crop).resize((image.shape[1], image.shape[0]), Image.NEAREST))
        assert result.mask.shape == image.shape[:2]
        # Output pixels whose centre falls exactly on a source-pixel border may go either way (PIL's fixed-point
        # rounding vs float): those rows/columns are left out; everything else must agree.
        rows = ~tie_positions(image.shape[0], nh)
        cols = ~tie_positions(image.shape[1], nw)
        assert rows.mean() > 0.9 and cols.mean() > 0.9
        assert np.mean(result.mask[rows][:, cols] == expected[rows][:, cols]) >= 0.999
        assert len(np.unique(expected)) >= 3  # a real comparison, not one class everywhere
        return
    ref = detections_from_outputs(eager)
    sx, sy = image.shape[1] / nw, image.shape[0] / nh
    mapped = (ref["boxes"] - [left, top, left, top]) * [sx, sy, sx, sy]
    mapped = np.clip(mapped, 0, [image.shape[1], image.shape[0]] * 2).astype(np.float32)
    want = {**ref, "boxes": mapped, "masks": np.zeros((len(mapped), 1, 1), np.float32)}
    got = {"boxes": result.boxes, "scores": result.scores, "labels": result.labels,
           "masks": np.zeros((len(result), 1, 1), np.float32)}
    matched = compare_detections(want, got, max_detections=item.spec.max_detections,
                                 score_threshold=item.spec.score_threshold)
    assert matched.passed and matched.matched >= 20, matched.summary
    assert result.masks.shape == (len(result), *image.shape[:2])
    # Each pasted mask lies inside (a pixel around) its box.
    for mask, (x1, y1, x2, y2) in zip(result.masks, result.boxes):
        ys, xs = np.nonzero(mask)
        if len(ys):
            assert xs.min() >= np.floor(x1) - 2 and xs.max() <= np.ceil(x2) + 2
            assert ys.min() >= np.floor(y1) - 2 and ys.max() <= np.ceil(y2) + 2


def test_http_gives_the_same_answer_as_grpc(server):
    from client import Segmenter

    image = sample(seed=3)
    with Segmenter(server.grpc_url, "deeplabv3_mobilenet") as grpc_seg, \
            Segmenter(server.http_url, "deeplabv3_mobilenet", protocol="http") as http_seg:
        mask = grpc_seg.segment(image).mask
        np.testing.assert_array_equal(mask, http_seg.segment(image).mask)
    assert len(np.unique(mask)) >= 3, "a one-class mask would agree whatever the protocol did"


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
    # The six answers differ from each other (a batch answered in the wrong order would then fail below).
    assert len({mask.tobytes() for mask in served}) == len(served)
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

    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(server.grpc_url)
    wrong = np.zeros((1, 64, 64, 3), np.uint8)  # not the model's size
    tensor = grpcclient.InferInput("IMAGE", list(wrong.shape), "UINT8")
    tensor.set_data_from_numpy(wrong)
    with pytest.raises(InferenceServerException,
                       match=r"unexpected shape for input 'IMAGE' for model 'unet'\. Expected \[-1,128,128,3\], "
                             r"got \[1,64,64,3\]"):
        client.infer("unet", [tensor], client_timeout=60)
    with Segmenter(server.grpc_url, "unet") as seg:
        assert seg.segment(sample()).mask.shape == (300, 420)
    assert server.is_ready()


def test_port_in_use_is_a_clear_error(repository_copy, triton_tools):
    from serve.server import ServerConfig, ServeError, TritonServer
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = ServerConfig(repository_copy, http_port=free_port(), grpc_port=port,
                              metrics_port=free_port())
        with pytest.raises(ServeError, match=rf"Port {port} \(grpc\) on 127.0.0.1 is already in use"):
            TritonServer(config).start()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_serve_stops_cleanly_on_signal_without_orphans(repository_copy, triton_tools, signum):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    ports = [free_port(), free_port(), free_port()]
    proc = subprocess.Popen([sys.executable, "-m", "serve", "--repository", str(repository_copy),
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


def test_serve_exports_first_when_the_repository_is_empty(tmp_path, triton_tools):
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


def test_the_charts_helm_test_script_passes_against_a_real_triton(server, helm_binary, tmp_path):
    """The `helm test` pod's script, rendered by the real helm, run against the real server: every model answers."""
    import subprocess
    import sys

    import yaml

    from serve.security import GRPC_ADMIN_KEY_HEADER

    chart = ROOT / "charts" / "segserve"
    rendered = subprocess.run([str(helm_binary), "template", "seg", str(chart), "--show-only",
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
