"""The comparator behind every parity gate fails when it should: expected values here are written out by hand."""

import numpy as np
import pytest

from export.compare import FP16_GATE, PARITY, compare_detections, compare_masks, compare_outputs


def dets(boxes, scores, labels=None, mask=0.9):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return {"boxes": boxes, "scores": np.asarray(scores, np.float32),
            "labels": np.asarray(labels if labels is not None else [1] * n, np.int32),
            "masks": np.full((n, 28, 28), mask, np.float32)}


def grid_boxes(n, offset=0.0):
    """``n`` disjoint 10x10 boxes on a grid (IoU 0 between any two)."""
    k = np.arange(n)
    x, y = (k % 10) * 20.0 + offset, (k // 10) * 20.0
    return np.stack([x, y, x + 10, y + 10], axis=1)


def outputs(items, d):
    """Padded Triton-style outputs (BOXES, SCORES, LABELS, MASKS, NUM_DETECTIONS) for a batch of dets dicts."""
    out = {"BOXES": np.zeros((len(items), d, 4), np.float32), "SCORES": np.zeros((len(items), d), np.float32),
           "LABELS": np.zeros((len(items), d), np.int32), "MASKS": np.zeros((len(items), d, 28, 28), np.float16),
           "NUM_DETECTIONS": np.zeros((len(items), 1), np.int32)}
    for b, item in enumerate(items):
        n = len(item["boxes"])
        out["BOXES"][b, :n], out["SCORES"][b, :n], out["LABELS"][b, :n] = item["boxes"], item["scores"], item["labels"]
        out["MASKS"][b, :n] = item["masks"]
        out["NUM_DETECTIONS"][b, 0] = n
    return out


def test_masks_agreement_is_the_fraction_of_equal_pixels():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[0, 0] = 1
    result = compare_masks(a, b)
    assert result.pixel_agreement == 0.99 and not result.passed
    assert compare_masks(a, a).passed and compare_masks(a, a).pixel_agreement == 1.0


def test_mask_shapes_must_agree():
    result = compare_masks(np.zeros((2, 4, 4), np.uint8), np.zeros((2, 4, 5), np.uint8))
    assert not result.passed and "mask shapes differ: (2, 4, 4) vs (2, 4, 5)" in result.summary


def test_a_batch_of_masks_is_judged_by_its_worst_item_not_the_average():
    ref = np.zeros((4, 50, 100), np.uint8)
    cand = ref.copy()
    cand[2, 0, :10] = 7  # item 2: 10 of 5000 pixels differ -> 99.8% (< 99.9%); the batch average is 99.95%
    result = compare_outputs("semantic", {"MASK": ref}, {"MASK": cand})
    assert not result.passed
    assert result.item == 2 and result.pixel_agreement == pytest.approx(0.998)
    assert "batch item 2 of 4" in result.summary


def test_detections_match_by_iou_not_by_index():
    ref = dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8])
    cand = dets([[20, 20, 40, 40.1], [0, 0, 10, 10]], [0.8, 0.9])
    result = compare_detections(ref, cand, max_detections=100)
    assert result.passed and result.matched == 2 and result.matched_fraction == 1.0


def test_a_missing_detection_fails_unless_it_ties_the_other_sides_cut():
    ref = dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.5, 0.5])
    cand = dets([[0, 0, 10, 10], [20, 20, 40, 40], [70, 70, 80, 80]], [0.9, 0.5, 0.5])
    limits = PARITY.__class__(matched_fraction=0.6)
    assert compare_detections(ref, cand, max_detections=3, limits=limits).passed  # full lists: 0.5s tie at the cut
    # No cut (lists not full): every detection must match.
    result = compare_detections(ref, cand, max_detections=100, limits=limits)
    assert not result.passed and result.unmatched_untied == 2


@pytest.mark.parametrize(("gap", "tied"), [(0.0, True), (9e-4, True), (2e-3, False), (0.01, False), (0.4, False)])
def test_only_a_real_score_tie_excuses_a_miss(gap, tied):
    """Reference and candidate are full lists (D = 20) that differ in one detection each. The reference's extra
    detection scores ``gap`` above the candidate's cut (0.5): only a real tie (within 1e-3) may explain the miss."""
    boxes = grid_boxes(21)
    scores = np.linspace(0.9, 0.5, 19).tolist()
    ref = dets(boxes[:20], [*scores, 0.5 + gap])
    cand = dets(np.concatenate([boxes[:19], boxes[20:21]]), [*scores, 0.5])
    result = compare_detections(ref, cand, max_detections=20)
    assert result.passed is tied, result.summary
    assert result.unmatched_untied == (0 if tied else 1)


def test_a_tie_is_judged_against_the_other_sides_cut_not_its_own():
    """The reference's list is full (its cut is 0.3), the candidate's is not (cut: the threshold 0.05). A reference
    detection at its own cut that the candidate lacks is a real miss: the candidate had room for it."""
    boxes = grid_boxes(5)
    ref = dets(boxes[:5], [0.9, 0.8, 0.7, 0.6, 0.3])
    cand = dets(boxes[:4], [0.9, 0.8, 0.7, 0.6])
    result = compare_detections(ref, cand, max_detections=5, score_threshold=0.05,
                                limits=PARITY.__class__(matched_fraction=0.5))
    assert not result.passed and result.unmatched_untied == 1


def test_a_detection_at_the_score_threshold_may_be_missing_on_the_other_side():
    boxes = grid_boxes(3)
    ref = dets(boxes, [0.9, 0.8, 0.0503])
    cand = dets(boxes[:2], [0.9, 0.8])
    limits = PARITY.__class__(matched_fraction=0.6)
    assert compare_detections(ref, cand, max_detections=100, score_threshold=0.05, limits=limits).passed
    assert not compare_detections(ref, cand, max_detections=100, score_threshold=0.04, limits=limits).passed


def test_all_tied_scores_do_not_excuse_garbage():
    """A saturated model scores every detection 1.0: every miss then 'ties' the cut. 99 of 100 boxes replaced by
    garbage must still fail, on the matched fraction."""
    boxes = grid_boxes(100)
    ref = dets(boxes, np.ones(100))
    garbage = boxes.copy()
    garbage[1:] += 3.0
    result = compare_detections(ref, dets(garbage, np.ones(100)), max_detections=100)
    assert not result.passed and result.matched == 1 and result.matched_fraction == 0.01
    assert "need >= 95%" in result.summary


def test_most_detections_must_match():
    boxes = grid_boxes(40)
    ref = dets(boxes, np.linspace(0.9, 0.2, 40))
    cand = dets(boxes[:37], np.linspace(0.9, 0.2, 40)[:37])  # 3 missing at the end of a full list of 37
    result = compare_detections(ref, cand, max_detections=37)  # candidate full: the misses are below its cut
    assert result.unmatched_untied == 0 and result.matched_fraction == pytest.approx(37 / 40)
    assert not result.passed  # 92.5% < 95%
    assert compare_detections(ref, cand, max_detections=37, limits=FP16_GATE).passed  # FP16 gate: 90%


def test_labels_must_agree_and_boxes_stay_within_tolerance():
    ref = dets([[0, 0, 200, 200]], [0.9], [1])
    assert not compare_detections(ref, dets([[0, 0, 200, 200]], [0.9], [2]), max_detections=100).passed
    shifted = compare_detections(ref, dets([[0.6, 0, 200.6, 200]], [0.9]), max_detections=100)
    assert shifted.matched == 1 and not shifted.passed and abs(shifted.max_box_error_px - 0.6) < 1e-4
    within = compare_detections(ref, dets([[0.4, 0, 200.4, 200]], [0.9]), max_detections=100)
    assert within.passed and abs(within.max_box_error_px - 0.4) < 1e-4


def test_masks_of_matched_detections_must_agree_after_binarising():
    ref = dets([[0, 0, 200, 200]], [0.9], mask=0.9)
    flipped = dets([[0, 0, 200, 200]], [0.9], mask=0.9)
    flipped["masks"][0, :3] = 0.1  # 3 of 28 rows below 0.5
    result = compare_detections(ref, flipped, max_detections=100)
    assert not result.passed and result.mask_agreement == pytest.approx(25 / 28)
    assert compare_detections(ref, dets([[0, 0, 200, 200]], [0.9], mask=0.6), max_detections=100).passed


def test_zero_detections_on_both_sides_agree():
    result = compare_detections(dets([], []), dets([], []), max_detections=100)
    assert result.passed and result.matched_fraction == 1.0
    assert not compare_detections(dets([[0, 0, 10, 10]], [0.9]), dets([], []), max_detections=100).passed


def test_the_worst_batch_item_is_reported():
    boxes = grid_boxes(10)
    good = dets(boxes, np.linspace(0.9, 0.5, 10))
    slightly_off = dets(boxes, np.linspace(0.9, 0.5, 10))
    slightly_off["masks"][0, :3] = 0.1  # all matched, binarised masks 98.9% equal (< 99.9%)
    mostly_missing = dets(boxes[:2], np.linspace(0.9, 0.5, 10)[:2])
    reference = outputs([good, good, good], 10)
    candidate = outputs([slightly_off, good, mostly_missing], 10)
    result = compare_outputs("instance", reference, candidate, max_detections=10)
    assert not result.passed and result.item == 2 and result.matched == 2
    assert result.summary.startswith("batch item 2 of 3:")
    # One failing item among passing ones is still a failure, wherever it sits.
    for bad in range(3):
        items = [good, good, good]
        items[bad] = slightly_off
        result = compare_outputs("instance", reference, outputs(items, 10), max_detections=10)
        assert not result.passed and result.item == bad
    assert compare_outputs("instance", reference, reference, max_detections=10).passed


def test_batch_sizes_must_agree():
    good = dets(grid_boxes(2), [0.9, 0.8])
    result = compare_outputs("instance", outputs([good, good], 10), outputs([good], 10), max_detections=10)
    assert not result.passed and "batch sizes differ: 2 vs 1" in result.summary


def test_thresholds_are_inclusive():
    """Exactly at each limit passes; one step worse fails."""
    a = np.zeros((1, 1000), np.uint8)
    b = a.copy()
    b[0, 0] = 1  # 999 / 1000 = the limit
    assert compare_masks(a, b).passed and "batch item" not in compare_masks(a, b).summary
    b[0, 1] = 1
    assert not compare_masks(a, b).passed
    ref = dets([[0, 0, 200, 200]], [0.9])
    at_limit = compare_detections(ref, dets([[0.5, 0, 200.5, 200]], [0.9]), max_detections=100)
    assert at_limit.matched == 1 and at_limit.max_box_error_px == 0.5 and at_limit.passed
    quarter = dets([[0, 0, 200, 200]], [0.9])
    quarter["masks"][0, :7] = 0.1  # 7 of 28 rows differ: 75% agreement
    limits = PARITY.__class__(mask_agreement=0.75)
    assert compare_detections(ref, quarter, max_detections=100, limits=limits).passed
    assert not compare_detections(ref, quarter, max_detections=100, limits=PARITY.__class__(mask_agreement=0.76)).passed
    # A mask probability of exactly 0.5 counts as foreground on both sides.
    assert compare_detections(dets([[0, 0, 9, 9]], [0.9], mask=0.5), dets([[0, 0, 9, 9]], [0.9], mask=0.9),
                              max_detections=100).mask_agreement == 1.0


def test_box_iou_values():
    from export.compare import box_iou

    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10], [2, 2, 4, 4], [0, 12, 10, 20]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 1.0, 4 / 100, 0.0]], rtol=1e-12)
    assert box_iou(a, b).shape == (1, 5) and box_iou(b, a).shape == (5, 1)


def test_matching_is_one_to_one_and_best_first():
    """Two candidates overlap one reference box; the better one is matched, the other is a miss."""
    ref = dets([[0, 0, 100, 100]], [0.9])
    cand = dets([[0, 0, 100, 100.5], [0, 0, 100, 100]], [0.9, 0.9])
    result = compare_detections(ref, cand, max_detections=100, limits=PARITY.__class__(matched_fraction=0.5))
    assert result.matched == 1 and result.max_box_error_px == 0.0 and result.unmatched_untied == 1


def test_iou_exactly_at_the_match_threshold_is_not_a_match():
    ref = dets([[0, 0, 100, 100]], [0.9])
    cand = dets([[0, 0, 100, 50]], [0.9])  # IoU 0.5
    assert compare_detections(ref, cand, max_detections=100, limits=PARITY.__class__(match_iou=0.5)).matched == 0
    assert compare_detections(ref, cand, max_detections=100, limits=PARITY.__class__(match_iou=0.49)).matched == 1


def test_padded_outputs_are_cut_per_batch_item():
    from export.compare import detections_from_outputs

    first = dets(grid_boxes(3), [0.9, 0.8, 0.7], [1, 2, 3])
    second = dets(grid_boxes(5, offset=1.0), [0.6, 0.5, 0.4, 0.3, 0.2], [4, 5, 6, 7, 8], mask=0.3)
    out = outputs([first, second], 10)
    got = detections_from_outputs(out, 1)
    assert [len(v) for v in got.values()] == [5, 5, 5, 5]
    np.testing.assert_array_equal(got["boxes"], second["boxes"])
    np.testing.assert_allclose(got["scores"], second["scores"])
    np.testing.assert_array_equal(got["labels"], second["labels"])
    assert got["boxes"].dtype == got["scores"].dtype == got["masks"].dtype == np.float32
    np.testing.assert_allclose(got["masks"], 0.3, atol=1e-3)
    assert len(detections_from_outputs(out)["boxes"]) == 3  # item 0 by default


@pytest.mark.parametrize(("gap", "excused"), [(0.0, True), (5e-4, True), (5e-3, False)])
def test_an_nms_tie_swaps_one_overlapping_box_for_another(gap, excused):
    """Two overlapping same-class boxes with (nearly) equal scores: NMS keeps either. Reference kept box A, the
    candidate box B (IoU 0.6 between them): excused only when the two scores really tie."""
    boxes = grid_boxes(5) * 5  # 50x50 boxes, far apart
    a = np.array([500, 500, 600, 600], np.float32)
    b = np.array([500, 525, 600, 625], np.float32)  # IoU 75/125 = 0.6 with a
    ref = dets(np.vstack([boxes, a]), [0.9, 0.8, 0.7, 0.6, 0.5, 0.75])
    cand = dets(np.vstack([boxes, b]), [0.9, 0.8, 0.7, 0.6, 0.5, 0.75 + gap])
    result = compare_detections(ref, cand, max_detections=100, limits=PARITY.__class__(matched_fraction=0.8))
    assert result.matched == 5 and result.passed is excused, result.summary
    other_label = dets(np.vstack([boxes, b]), [0.9, 0.8, 0.7, 0.6, 0.5, 0.75], [1, 1, 1, 1, 1, 2])
    assert not compare_detections(ref, other_label, max_detections=100,
                                  limits=PARITY.__class__(matched_fraction=0.8)).passed


def test_a_few_untied_misses_are_tolerated_many_are_not():
    """One unexplained swap in 100 (an internal proposal cut: one miss on each side, 2%) passes; two fail."""
    boxes = grid_boxes(100)
    scores = np.linspace(0.9, 0.3, 100)
    ref = dets(boxes, scores)
    for swapped, ok in ((1, True), (2, False), (3, False)):
        moved = boxes.copy()
        moved[10:10 + swapped] += 5.0
        result = compare_detections(ref, dets(moved, scores), max_detections=100)
        assert result.unmatched_untied == 2 * swapped and result.passed is ok, result.summary
