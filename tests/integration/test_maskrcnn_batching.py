"""Mask R-CNN under the real tritonserver's dynamic batcher: concurrent single-image requests are merged into larger
batches (Triton's own statistics say so) and every response is still its own image's answer."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from support import TOOLS, running_triton

pytestmark = pytest.mark.integration

if not (TOOLS / "triton" / ".complete").exists():
    pytest.skip("tritonserver not fetched: run `make tools`", allow_module_level=True)

REQUESTS = 8


@pytest.fixture(scope="module")
def maskrcnn_server(exported, tmp_path_factory):
    """A server with only the session's small Mask R-CNN export (max batch 8, preferred 4)."""
    from export.config import ServingOptions
    from export.repository import write_model

    item = exported["maskrcnn"]
    repo = tmp_path_factory.mktemp("maskrcnn_repo")
    write_model(item.spec, ServingOptions.for_target("local"), repo, onnx_path=item.onnx_path)
    with running_triton(repo, tmp_path_factory.mktemp("triton") / "tritonserver.log") as triton:
        yield triton


def model_stats(server) -> dict:
    """Triton's statistics extension: GET /v2/models/<model>/stats (one entry per version)."""
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/maskrcnn/stats", timeout=10) as r:
        (stats,) = json.load(r)["model_stats"]
    return stats


def infer_one(url: str, image: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        tensor = grpcclient.InferInput("IMAGE", [1, *image.shape], "UINT8")
        tensor.set_data_from_numpy(image[None])
        result = client.infer("maskrcnn", [tensor], client_timeout=600)
        return {name: result.as_numpy(name) for name in names}
    finally:
        client.close()


def test_concurrent_single_image_requests_are_batched_and_each_gets_its_own_answer(maskrcnn_server, exported):
    """Item 4: execution_count < inference_count in /v2/models/maskrcnn/stats, and each response equals the
    in-process answer for that image alone (and not another image's)."""
    from concurrent.futures import ThreadPoolExecutor

    from export.compare import compare_detections, detections_from_outputs
    from export.onnx_export import example_input
    from export.parity import ort_session, run_onnxruntime

    item = exported["maskrcnn"]
    spec = item.spec
    images = example_input(spec, REQUESTS, seed=70).numpy()
    before = model_stats(maskrcnn_server)
    with ThreadPoolExecutor(REQUESTS) as pool:
        served = list(pool.map(lambda im: infer_one(maskrcnn_server.grpc_url, im, spec.output_names), images))
    after = model_stats(maskrcnn_server)

    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    sizes = sorted(int(b["batch_size"]) for b in after["batch_stats"] if int(b["compute_infer"]["count"]) > 0)
    print(f"\n{inferences} inferences in {executions} executions, batch sizes seen: {sizes}")
    assert inferences == REQUESTS
    assert executions < inferences, f"the dynamic batcher merged nothing: {executions} executions"
    assert max(sizes) > 1

    session = ort_session(item.onnx_path)
    alone = [run_onnxruntime(item.onnx_path, spec, image[None], session) for image in images]
    for i, response in enumerate(served):
        got = detections_from_outputs(response)
        own = compare_detections(detections_from_outputs(alone[i]), got, max_detections=spec.max_detections)
        assert own.passed and own.matched > 0, f"request {i}: {own.summary}"
        # Not a neighbour's answer: every other image's boxes differ from this response's.
        for j in range(REQUESTS):
            if j != i:
                assert not np.allclose(alone[j]["BOXES"][0], response["BOXES"][0], atol=1e-2), \
                    f"request {i}'s answer is also image {j}'s"
