"""Mask R-CNN served batched: the batched export gives each image torchvision's own batch-1 answer, whatever else is
in its batch, with NMS run per image, per level and per class on un-shifted boxes.

The full-size-code-path export is the session's shared small export (``exported["maskrcnn"]``, size 256, max batch 8);
ONNX Runtime outputs are computed once per module and shared by the tests.
"""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

# Matched detections (same IoU rule as the export's parity check) per image, of the larger of the two counts.
MIN_MATCHED_FRACTION = 0.95


@pytest.fixture(scope="module")
def maskrcnn(exported):
    return exported["maskrcnn"]


@pytest.fixture(scope="module")
def runs(maskrcnn):
    """ORT outputs of one target image alone, first in a batch of 4 and last in a batch of 4 (other neighbours)."""
    from export.onnx_export import example_input
    from export.parity import ort_session, run_onnxruntime

    spec = maskrcnn.spec
    images = example_input(spec, 7, seed=60).numpy()
    target, first_batch = images[0], images[:4]
    last_batch = np.stack([images[4], images[5], images[6], target])
    session = ort_session(maskrcnn.onnx_path)
    return {
        "first_batch": first_batch,
        "alone": run_onnxruntime(maskrcnn.onnx_path, spec, target[None], session),
        "first": run_onnxruntime(maskrcnn.onnx_path, spec, first_batch, session),
        "last": run_onnxruntime(maskrcnn.onnx_path, spec, last_batch, session),
    }


def test_batch_of_4_matches_torchvision_run_one_image_at_a_time(maskrcnn, runs):
    """Item 3: each image of a batched ONNX Runtime run against torchvision's unmodified RPN + RoI heads at batch 1
    (its own batched_nms), matched by IoU as in the parity check."""
    from export.compare import PARITY, compare_detections, detections_from_outputs
    from export.maskrcnn.reference import torchvision_outputs

    spec = maskrcnn.spec
    reference = torchvision_outputs(maskrcnn.module, runs["first_batch"])
    results = [compare_detections(detections_from_outputs(reference, b), detections_from_outputs(runs["first"], b),
                                  max_detections=spec.max_detections) for b in range(len(runs["first_batch"]))]
    report = "\n".join(f"image {b}: {r.summary}" for b, r in enumerate(results))
    print(report)
    for r in results:
        assert r.reference_count > 0, "compare some detections, not none"
        assert r.matched >= MIN_MATCHED_FRACTION * max(r.reference_count, r.candidate_count), report
        assert r.max_box_error_px <= PARITY.box_error_px and r.mask_agreement >= PARITY.mask_agreement, report


def test_an_images_answer_does_not_depend_on_what_else_is_in_its_batch(runs):
    """Item 3: the same image alone, first of 4 and last of 4 (different neighbours) gives the same outputs."""
    alone, first, last = runs["alone"], runs["first"], runs["last"]
    assert int(alone["NUM_DETECTIONS"][0, 0]) > 0
    for name in ("NUM_DETECTIONS", "LABELS"):
        np.testing.assert_array_equal(first[name][0], alone[name][0], err_msg=name)
        np.testing.assert_array_equal(last[name][3], alone[name][0], err_msg=name)
    for name, atol in (("BOXES", 1e-3), ("SCORES", 1e-5), ("MASKS", 1e-3)):
        want = alone[name][0].astype(np.float32)
        np.testing.assert_allclose(first[name][0].astype(np.float32), want, atol=atol, err_msg=name)
        np.testing.assert_allclose(last[name][3].astype(np.float32), want, atol=atol, err_msg=name)
    # The neighbours really are different images with different answers.
    assert not np.array_equal(first["BOXES"][1], alone["BOXES"][0])


def test_nms_runs_per_image_level_and_class_on_boxes_inside_the_image(maskrcnn):
    """Item 2: every NonMaxSuppression sees groups on its batch axis (B x levels in the RPN, B x classes in the box
    head), one class each, and boxes that stay inside the image: no coordinate offsets (class 90 x 10^4 is beyond
    FP16's 65,504)."""
    import onnx
    import onnxruntime as ort

    from export.onnx_export import example_input

    spec = maskrcnn.spec
    model = onnx.load(str(maskrcnn.onnx_path))
    nms = [n for n in model.graph.node if n.op_type == "NonMaxSuppression"]
    assert len(nms) == 2, [n.name for n in nms]
    watched = [name for n in nms for name in n.input[:2]]
    for name in watched:
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = 2
    values = dict(zip(watched, session.run(watched, {"IMAGE": example_input(spec, batch, seed=61).numpy()})))
    (rpn_boxes, rpn_scores), (det_boxes, det_scores) = [(values[n.input[0]], values[n.input[1]]) for n in nms]
    assert rpn_boxes.shape[0] == batch * 5 and rpn_scores.shape[:2] == (batch * 5, 1)  # 5 FPN levels
    assert det_boxes.shape[0] == batch * (spec.num_classes - 1) and det_scores.shape[:2] == (batch * 90, 1)
    for boxes in (rpn_boxes, det_boxes):
        assert boxes.min() >= 0.0 and boxes[..., 0::2].max() <= spec.width and boxes[..., 1::2].max() <= spec.height
    for scores in (rpn_scores, det_scores):
        assert scores.min() >= -1.0 and scores.max() <= 1.0


def test_grouped_nms_is_torchvision_nms_in_every_group():
    import torch
    from torchvision.ops import nms

    from export.maskrcnn.nms import MASKED_SCORE, grouped_nms

    torch.manual_seed(0)
    groups, n = 6, 200
    corner = torch.rand(groups, n, 2) * 200
    boxes = torch.cat([corner, corner + 5 + torch.rand(groups, n, 2) * 60], dim=-1)
    scores = torch.rand(groups, n)
    scores[torch.rand(groups, n) < 0.3] = MASKED_SCORE
    keep = grouped_nms(boxes, scores, 0.5, 40)
    for g in range(groups):
        real = torch.nonzero(scores[g] >= 0).flatten()
        want = real[nms(boxes[g, real], scores[g, real], 0.5)][:40]
        assert set(torch.nonzero(keep[g]).flatten().tolist()) == set(want.tolist()), g
    assert not keep[scores == MASKED_SCORE].any()
    assert keep.sum(dim=1).max() <= 40


def test_grouped_nms_lowers_to_one_onnx_nms_that_agrees_with_eager(tmp_path):
    """The ONNX lowering (one NonMaxSuppression, groups on its batch axis) gives the eager keep mask, for a dynamic
    number of groups."""
    import onnx
    import onnxruntime as ort
    import torch

    from export.maskrcnn.nms import grouped_nms, onnx_translation_table

    class Keep(torch.nn.Module):
        def forward(self, boxes, scores):
            return grouped_nms(boxes, scores, 0.6, 25).to(torch.int32)

    torch.manual_seed(1)
    corner = torch.rand(5, 120, 2) * 100
    boxes = torch.cat([corner, corner + 4 + torch.rand(5, 120, 2) * 40], dim=-1)
    scores = torch.rand(5, 120)
    groups = torch.export.Dim("groups", min=1, max=64)
    program = torch.onnx.export(Keep().eval(), (boxes, scores), dynamo=True, input_names=["boxes", "scores"],
                                dynamic_shapes={"boxes": {0: groups}, "scores": {0: groups}},
                                custom_translation_table=onnx_translation_table(), opset_version=18, verbose=False)
    path = tmp_path / "keep.onnx"
    program.save(str(path))
    assert [n.op_type for n in onnx.load(str(path)).graph.node].count("NonMaxSuppression") == 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for g in (1, 5):
        got = session.run(None, {"boxes": boxes[:g].numpy(), "scores": scores[:g].numpy()})[0]
        np.testing.assert_array_equal(got, Keep()(boxes[:g], scores[:g]).numpy())


def test_fpn_level_mapping_is_torchvisions_without_fp16_overflow():
    import torch
    from torchvision.ops.poolers import LevelMapper

    from export.maskrcnn.core import fpn_levels

    torch.manual_seed(2)
    corner = torch.rand(500, 2) * 100
    boxes = torch.cat([corner, corner + 1 + torch.rand(500, 2) * 700], dim=1)  # areas up to ~490,000 > 65,504
    assert torch.equal(fpn_levels(boxes, 2, 5), LevelMapper(2, 5)([boxes]))
    half = fpn_levels(boxes.half(), 2, 5)  # FP16 arithmetic: no inf, the same levels away from boundaries
    assert (half == LevelMapper(2, 5)([boxes])).float().mean() > 0.97
