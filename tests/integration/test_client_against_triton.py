"""The client against the real local tritonserver: many images in flight, several images per detect/segment call,
the request-size limit, surviving a server restart, TLS (gRPC mutual TLS; HTTPS through a TLS-terminating proxy
like the chart's ingress) and headers that reach restricted APIs (issue #10 items 3-6, issue #8 item 5)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serve.security import ADMIN_KEY_HEADER, GRPC_ADMIN_KEY_HEADER
from support import TOOLS, free_port

pytestmark = pytest.mark.integration

if not (TOOLS / "triton" / ".complete").exists():
    pytest.skip("tritonserver not fetched: run `make tools`", allow_module_level=True)

SEMANTIC = "deeplabv3_mobilenet"
KEY = "s3cret-test-key-0"
# The key's header: defined once by the server (over gRPC Triton expects it with a prefix, see serve.security).
GRPC_KEY_HEADER = GRPC_ADMIN_KEY_HEADER
HTTP_KEY_HEADER = ADMIN_KEY_HEADER


def sample(height=300, width=420, seed=11):
    from export.samples import synthetic_image

    return synthetic_image(height, width, seed=seed)


@pytest.fixture(scope="module")
def repository(exported, tmp_path_factory) -> Path:
    """The semantic and the instance model only."""
    repo = tmp_path_factory.mktemp("client-repo")
    for name in (SEMANTIC, "maskrcnn"):
        shutil.copytree(exported["_repository"] / name, repo / name)
    return repo


@pytest.fixture(scope="module")
def semantic_repository(exported, tmp_path_factory) -> Path:
    """The semantic model only: the servers that restart or speak TLS start in seconds."""
    repo = tmp_path_factory.mktemp("client-repo-semantic")
    shutil.copytree(exported["_repository"] / SEMANTIC, repo / SEMANTIC)
    return repo


def start(repository: Path, log: Path, ports=None, extra=(), **config):
    from serve.server import ServerConfig, TritonServer

    http, grpc, metrics = ports or (free_port(), free_port(), free_port())
    # A short exit timeout: Triton 2.51 keeps a model "live" while an HTTP connection that carried an inference
    # stays open (the restart test keeps its clients on purpose) and would wait its full default before exiting.
    server = TritonServer(ServerConfig(repository, http_port=http, grpc_port=grpc, metrics_port=metrics,
                                       exit_timeout_s=3, extra_args=tuple(extra), **config), log_path=log)
    server.start()
    try:
        server.wait_ready(300)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    triton = start(repository, tmp_path_factory.mktemp("triton") / "plain.log")
    yield triton
    triton.stop()


# -- many images, several per call, request size --------------------------------------------------------------
def test_map_yields_the_sequential_results_in_order(server):
    from client import ClientError, Segmenter

    images = [sample(200 + 20 * s, 300, seed=s) for s in range(8)]
    with Segmenter(server.grpc_url, SEMANTIC) as seg:
        expected = [seg.segment(image).mask for image in images]
        got = [r.mask for r in seg.map(images, concurrency=4)]
        assert len(got) == 8
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)
        mixed = list(seg.map([images[0], b"not an image", images[1]], concurrency=2, return_exceptions=True))
        assert isinstance(mixed[1], ClientError) and "Cannot read image" in str(mixed[1])
        np.testing.assert_array_equal(mixed[2].mask, expected[1])


def test_map_works_over_http(server):
    from client import Segmenter

    images = [sample(seed=s) for s in range(4)]
    with Segmenter(server.http_url, SEMANTIC, protocol="http") as seg:
        expected = [seg.segment(image).mask for image in images]
        for a, b in zip(expected, seg.map(images, concurrency=3)):
            np.testing.assert_array_equal(a, b.mask)


def test_detect_of_several_images_gives_each_its_own_result(server):
    """Issue #8 item 5: one result per image, each cut at its own NUM_DETECTIONS, the same as alone."""
    from client import DetectionResult, Segmenter

    images = [sample(seed=1), sample(240, 320, seed=2)]
    with Segmenter(server.grpc_url, "maskrcnn") as seg:
        alone = [seg.detect(image) for image in images]
        together = seg.detect(images)
    assert isinstance(together, list) and len(together) == 2
    for a, b, image in zip(alone, together, images):
        assert isinstance(b, DetectionResult) and len(a) == len(b) > 0
        assert b.image_size == image.shape[:2]
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert b.full_masks().shape == (len(b), *image.shape[:2])


def test_segment_of_several_images_is_sent_in_batches(server):
    from client import Segmenter

    images = [sample(seed=s) for s in range(6)]  # more than the small export's max batch (4)
    with Segmenter(server.grpc_url, SEMANTIC) as seg:
        assert seg.info.max_batch_size == 4
        results = seg.segment(images)
        for image, result in zip(images, results):
            np.testing.assert_array_equal(result.mask, seg.segment(image).mask)


def test_a_request_above_the_models_size_limit_is_refused_by_the_client(server):
    from client import ClientError, Segmenter

    with Segmenter(server.grpc_url, SEMANTIC) as seg:
        h, w, b = seg.info.height, seg.info.width, seg.info.max_batch_size
        too_big = np.zeros((b + 1, h, w, 3), np.uint8)
        with pytest.raises(ClientError, match=rf"Request of {too_big.nbytes:,} bytes \({b + 1} images\) is above "
                                              rf"`{SEMANTIC}`'s limit of {b * h * w * 3:,} bytes"):
            seg.infer(too_big)


def test_cli_goes_on_after_a_bad_image_and_keeps_every_overlay(server, tmp_path, capsys):
    from PIL import Image

    from client.__main__ import main

    Image.fromarray(sample()).save(tmp_path / "a.png")
    Image.fromarray(sample(seed=4)).save(tmp_path / "a.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    frames = [Image.fromarray(sample(100, 120, seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "out"
    argv = ["segment", *(str(tmp_path / n) for n in ("a.png", "broken.jpg", "a.jpg", "anim.gif")), "--out",
            str(out), "--url", server.grpc_url, "--model", SEMANTIC, "--concurrency", "2"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [f"a.jpg.{SEMANTIC}.png", f"a.png.{SEMANTIC}.png",
                                                     f"anim.{SEMANTIC}.png"]
    err = captured.err.strip().splitlines()
    assert err[-1] == "error: 1 of 4 images failed"
    assert any(line.startswith("error: Cannot read image") and "broken.jpg" in line for line in err)
    assert any("anim.gif has several frames; only the first was segmented" in line for line in err)
    assert "first of 3 frames" in captured.out
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(out), "--url", server.grpc_url, "--model",
                 "maskrcnn"]) == 0
    assert (out / "a.maskrcnn.png").is_file()


# -- restart ------------------------------------------------------------------------------------------------
def test_a_client_survives_a_server_restart(semantic_repository, tmp_path):
    """The same Segmenter objects answer before and after the real server restarts on the same ports; while it
    is down, calls are retried a bounded number of times and the error says how often."""
    from client import ClientError, Retry, Segmenter

    ports = (free_port(), free_port(), free_port())
    image = sample(seed=5)
    triton = start(semantic_repository, tmp_path / "first.log", ports)
    try:
        # Spans about 2-3 s: more than gRPC's reconnect backoff (capped at 1 s by the client), as the default does.
        retry = Retry(attempts=6, backoff_s=0.2, max_backoff_s=1.0)
        grpc_seg = Segmenter(triton.grpc_url, SEMANTIC, retry=retry, timeout_s=10)
        http_seg = Segmenter(triton.http_url, SEMANTIC, protocol="http", retry=retry, timeout_s=10)
        before = grpc_seg.segment(image).mask
        np.testing.assert_array_equal(http_seg.segment(image).mask, before)
    finally:
        triton.stop()
    for seg in (grpc_seg, http_seg):
        started = time.monotonic()
        with pytest.raises(ClientError, match=r"Inference on `deeplabv3_mobilenet` at .* failed after 6 attempts"):
            seg.segment(image)
        assert time.monotonic() - started < 5
    triton = start(semantic_repository, tmp_path / "second.log", ports)
    try:
        np.testing.assert_array_equal(grpc_seg.segment(image).mask, before)
        np.testing.assert_array_equal(http_seg.segment(image).mask, before)
    finally:
        grpc_seg.close()
        http_seg.close()
        triton.stop()


# -- TLS and headers ----------------------------------------------------------------------------------------
def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """A throwaway CA, a server certificate for `segserve.test` and a client certificate (EC P-256)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=segserve test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:segserve.test\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")):
        (d / f"{name}.ext").write_text(ext)
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d


class TLSProxy:
    """HTTPS in front of Triton's plain HTTP port (what the chart's ingress does): TLS terminates here, bytes are
    relayed unchanged."""

    def __init__(self, certs: Path, target_port: int) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs / "server.pem", certs / "server.key")
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30)
            tls = self.context.wrap_socket(conn, server_side=True)
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            conn.close()
            return
        self.sockets += [tls, upstream]

        def pump(src, dst):
            try:
                while data := src.recv(1 << 16):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()
        for s in self.sockets:  # shutdown wakes the relay threads' blocking recv; close alone would not
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture(scope="module")
def secure_server(semantic_repository, certs, tmp_path_factory):
    """gRPC with mutual TLS; inference, model config and the repository API behind a key on both protocols."""
    triton = start(semantic_repository, tmp_path_factory.mktemp("triton") / "tls.log", extra=(
        "--grpc-use-ssl-mutual=true", f"--grpc-server-cert={certs / 'server.pem'}",
        f"--grpc-server-key={certs / 'server.key'}", f"--grpc-root-cert={certs / 'ca.pem'}"),
        restricted_apis=("inference", "model-config", "model-repository"), admin_key=KEY)
    proxy = TLSProxy(certs, triton.config.http_port)
    yield triton, proxy
    proxy.close()
    triton.stop()


def mutual(certs: Path, **overrides):
    from client import TLS

    options = dict(root_certificates=certs / "ca.pem", certificate_chain=certs / "client.pem",
                   private_key=certs / "client.key", target_name="segserve.test")
    options.update(overrides)
    return TLS(**options)


def test_grpc_mutual_tls_with_headers_answers(secure_server, certs):
    from client import Segmenter

    triton, _ = secure_server
    image = sample(seed=6)
    with Segmenter(triton.grpc_url, SEMANTIC, tls=mutual(certs), headers={GRPC_KEY_HEADER: KEY}) as seg:
        assert seg.connection.display == f"grpcs://{triton.grpc_url}"
        mask = seg.segment(image).mask
        assert mask.shape == image.shape[:2]
        assert [r.mask.shape for r in seg.map([image, image], concurrency=2)] == [image.shape[:2]] * 2


@pytest.mark.parametrize("case, match", [
    ("no header", r"restricted"),
    ("no client certificate", r"Cannot reach Triton at grpcs://"),
    ("wrong CA", r"Cannot reach Triton at grpcs://"),
    ("no name override", r"Cannot reach Triton at grpcs://"),
])
def test_grpc_tls_and_headers_are_really_checked(secure_server, certs, tmp_path, case, match):
    """Each piece matters: without it the real server refuses (so the passing test above proves it was sent)."""
    from client import ClientError, Retry, Segmenter

    triton, _ = secure_server
    tls, headers = mutual(certs), {GRPC_KEY_HEADER: KEY}
    if case == "no header":
        headers = {}
    elif case == "no client certificate":
        tls = mutual(certs, certificate_chain=None, private_key=None)
    elif case == "wrong CA":
        shutil.copy(certs / "client.pem", tmp_path / "not-the-ca.pem")
        tls = mutual(certs, root_certificates=tmp_path / "not-the-ca.pem")
    else:
        tls = mutual(certs, target_name=None)
    with pytest.raises(ClientError, match=match):
        Segmenter(triton.grpc_url, SEMANTIC, tls=tls, headers=headers, ready_timeout_s=3, timeout_s=3,
                  retry=Retry(attempts=1)).segment(sample())


def test_https_through_a_tls_proxy_with_headers(secure_server, certs):
    from client import TLS, ClientError, Retry, Segmenter

    triton, proxy = secure_server
    url = f"127.0.0.1:{proxy.port}"
    tls = TLS(root_certificates=certs / "ca.pem", target_name="segserve.test")
    image = sample(seed=7)
    with Segmenter(url, SEMANTIC, protocol="http", tls=tls, headers={HTTP_KEY_HEADER: KEY}) as seg:
        assert seg.connection.display == f"https://{url}"
        assert seg.segment(image).mask.shape == image.shape[:2]
    with pytest.raises(ClientError, match=r"restricted|not ready"):
        Segmenter(url, SEMANTIC, protocol="http", tls=tls, timeout_s=5, retry=Retry(attempts=1))


def test_cli_speaks_tls_with_headers(secure_server, certs, tmp_path, capsys):
    from PIL import Image

    from client.__main__ import main

    triton, _ = secure_server
    Image.fromarray(sample()).save(tmp_path / "street.png")
    tls = ["--ca-cert", str(certs / "ca.pem"), "--client-cert", str(certs / "client.pem"), "--client-key",
           str(certs / "client.key"), "--tls-server-name", "segserve.test"]
    assert main(["segment", str(tmp_path / "street.png"), "--url", triton.grpc_url, "--model", SEMANTIC, *tls,
                 "--header", f"{GRPC_KEY_HEADER}: {KEY}", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / f"street.{SEMANTIC}.png").is_file()
    assert main(["models", "--url", triton.grpc_url, *tls, "--header", f"{GRPC_KEY_HEADER}: {KEY}"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == SEMANTIC
