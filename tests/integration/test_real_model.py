"""A real trained network end to end: rembg's u2netp, exported through `python -m export`'s import path, served by
the real tritonserver, called through the client on a real photo (imgaug's quokka) and its variants. The mask at
the photo's original resolution must reach IoU >= 0.90 against the annotated polygon (the raw ONNX with rembg's own
pre-processing reaches about 0.95: bench/u2netp_quokka.py). An error anywhere in decode, EXIF, letterbox, uint8
in, in-graph normalisation, network, threshold or un-letterbox costs IoU here, whatever both sides share."""

from __future__ import annotations

import numpy as np
import pytest

from quokka import VARIANTS, iou, make_variants, missing
from support import TOOLS, no_findings, running_triton

pytestmark = pytest.mark.integration

if not (TOOLS / "triton" / ".complete").exists():
    pytest.skip("tritonserver not fetched: run `make tools`", allow_module_level=True)

MIN_IOU = 0.90


@pytest.fixture(scope="module")
def u2netp(tmp_path_factory):
    """u2netp exported (target local) from the fetched, sha256-checked rembg file, served by the real Triton."""
    pytest.importorskip("onnxruntime")
    from export.config import ServingOptions
    from export.pipeline import export_model
    from export.spec import get_spec

    work = tmp_path_factory.mktemp("u2netp")
    result = export_model(get_spec("u2netp"), ServingOptions.for_target("local"), work / "repo",
                          work_dir=work / "onnx", progress=False)
    with running_triton(work / "repo", work / "tritonserver.log") as triton:
        yield triton, result


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    reason = missing()
    if reason:
        pytest.fail(reason)  # `make test` fetches it: missing data is a broken setup, not a skip
    return make_variants(tmp_path_factory.mktemp("quokka"))


def test_u2netp_export_passed_parity_and_the_static_tensorrt_check(u2netp):
    _, result = u2netp
    assert "pixel agreement" in result.parity and "raw ONNX + numpy reference" in result.parity
    assert no_findings() in result.parity


@pytest.mark.parametrize("variant", VARIANTS)
def test_u2netp_through_triton_outlines_the_quokka(u2netp, variants, variant):
    from client import Segmenter

    server, _ = u2netp
    item = variants[variant]
    with Segmenter(server.grpc_url, "u2netp") as seg:
        result = seg.segment(item.path)
    assert result.mask.shape == item.truth.shape, "mask not at the image's displayed resolution"
    assert set(np.unique(result.mask)) <= {0, 1} and result.class_names == ("background", "foreground")
    score = iou(result.mask == 1, item.truth)
    print(f"u2netp {variant}: IoU {score:.4f} through Triton")
    assert score >= MIN_IOU, f"{variant}: IoU {score:.4f} < {MIN_IOU} against the quokka polygon"
