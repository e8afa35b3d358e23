"""The comparator behind every parity gate (export/compare.py): it fails when it should, and it reports what users
read (the exact one-line summaries, the gate values, the per-item numbers of a batch, the NMS-overlap boundary).
Expected values here are written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from export import compare as cmp
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


def outputs(items, d=4, dtype=np.float32):
    """Padded Triton-style outputs (BOXES, SCORES, LABELS, MASKS, NUM_DETECTIONS) for a batch of dets dicts: ``d``
    slots per item, BOXES and SCORES in ``dtype``, MASKS in float16 as served (export/spec.py)."""
    out = {"BOXES": np.zeros((len(items), d, 4), dtype), "SCORES": np.zeros((len(items), d), dtype),
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


# -- What it reports: exact summaries, gate values, the cut rule, the worst of several failing items ----------------
def test_the_gates_hold_their_documented_values():
    assert cmp.PARITY == cmp.Thresholds(0.999, 0.99, 0.5, 0.999, 0.95, 1e-3, 0.02)
    assert cmp.FP16_GATE == cmp.Thresholds(0.995, 0.95, 1.0, 0.99, 0.9, 1e-2, 0.05)
    assert cmp.NMS_OVERLAP == 0.5


def test_mask_summaries_are_worded_exactly():
    a = np.zeros((2, 10, 10), np.uint8)
    b = a.copy()
    b[1, 0, :3] = 1
    result = cmp.compare_masks(a, b)
    assert result.summary == "pixel agreement 97.000000% (batch item 1 of 2) (need >= 99.90%)"
    assert (result.passed, result.item, result.pixel_agreement) == (False, 1, 0.97)
    single = cmp.compare_masks(a[0], b[1], cmp.FP16_GATE)
    assert single.summary == "pixel agreement 97.000000% (need >= 99.50%)" and single.item == 0
    one_item = cmp.compare_masks(a[:1], b[:1])
    assert one_item.summary == "pixel agreement 100.000000% (need >= 99.90%)" and one_item.passed
    shapes = cmp.compare_masks(a, a[0])
    assert (shapes.passed, shapes.summary) == (False, "mask shapes differ: (2, 10, 10) vs (10, 10)")
    semantic = cmp.compare_outputs("semantic", {"MASK": a}, {"MASK": b})
    assert semantic.summary == result.summary


def test_detection_summary_is_worded_exactly():
    ref = dets([[0, 0, 100, 100], [200, 200, 300, 300]], [0.9, 0.8])
    cand = dets([[0.25, 0, 100.25, 100]], [0.9])
    result = cmp.compare_detections(ref, cand, max_detections=100)
    assert result.summary == ("1 of 2/1 detections matched (IoU > 0.99; 50.0%, need >= 95%), 1 unmatched not tied "
                              "at a cut (<= 2%), max box error 0.250 px (<= 0.5), binarised mask agreement "
                              "100.0000% (>= 99.9%)")
    assert (result.passed, result.reference_count, result.candidate_count, result.matched, result.unmatched_untied,
            result.max_box_error_px, result.mask_agreement) == (False, 2, 1, 1, 1, 0.25, 1.0)
    assert result.matched_fraction == 0.5


def test_matched_fraction_counts_against_the_longer_side():
    assert cmp.Agreement(True, "", reference_count=2, candidate_count=4, matched=2).matched_fraction == 0.5
    assert cmp.Agreement(True, "", reference_count=4, candidate_count=2, matched=2).matched_fraction == 0.5
    assert cmp.Agreement(True, "").matched_fraction == 1.0


def test_no_detections_on_one_side_reports_zero_matches():
    result = cmp.compare_detections(dets([], []), dets([[0, 0, 10, 10]], [0.9]), max_detections=100)
    assert (result.passed, result.matched, result.unmatched_untied, result.mask_agreement) == (False, 0, 1, 1.0)
    assert result.summary.startswith("0 of 0/1 detections matched (IoU > 0.99; 0.0%")


def test_the_cut_is_the_last_score_of_a_full_list_else_the_threshold():
    assert cmp._cut(np.array([0.9, 0.4, 0.6], np.float32), 3, 0.05) == np.float32(0.4)
    assert cmp._cut(np.array([0.9, 0.4, 0.6], np.float32), 4, 0.05) == 0.05
    assert cmp._cut(np.array([], np.float32), 0, 0.05) == 0.05


def test_an_nms_tie_needs_more_than_half_overlap():
    """Boxes A and B overlap with IoU exactly 0.5 (torchvision's NMS keeps both): no NMS tie, so a miss."""
    far = [[1000, 1000, 1010, 1010], [2000, 2000, 2010, 2010], [3000, 3000, 3010, 3010]]
    a, b = [0, 0, 100, 120], [0, 40, 100, 160]   # intersection 80, union 160: IoU 0.5
    c = [0, 30, 100, 150]                         # IoU 90/150 = 0.6 with a
    limits = cmp.Thresholds(matched_fraction=0.5, untied_fraction=0.0)
    ref = dets(far + [a], [0.9, 0.8, 0.7, 0.75])
    assert not cmp.compare_detections(ref, dets(far + [b], [0.9, 0.8, 0.7, 0.75]), max_detections=100,
                                      limits=limits).passed
    assert cmp.compare_detections(ref, dets(far + [c], [0.9, 0.8, 0.7, 0.75]), max_detections=100,
                                  limits=limits).passed


def test_a_single_item_batch_is_reported_without_a_batch_prefix():
    ref = dets([[0, 0, 10, 10]], [0.9])
    outs = outputs([ref], 1)
    result = cmp.compare_outputs("instance", outs, outs, max_detections=100)
    assert result.passed and result.item == 0 and result.summary.startswith("1 of 1/1 detections matched")
    two = {k: np.concatenate([v, v]) for k, v in outs.items()}
    result = cmp.compare_outputs("instance", two, two, max_detections=100)
    assert result.passed and result.item == 0 and result.summary.startswith("batch item 0 of 2: 1 of 1/1")
    mismatch = cmp.compare_outputs("instance", two, outs, max_detections=100)
    assert (mismatch.passed, mismatch.summary) == (False, "batch sizes differ: 2 vs 1")


def test_the_worse_of_two_failing_items_is_the_one_with_fewer_matches():
    good = dets([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], [0.9, 0.8, 0.7, 0.6])
    one_missing = {k: v[:3] for k, v in good.items()}
    two_missing = {k: v[:2] for k, v in good.items()}

    ref = outputs([good, good, good])
    result = cmp.compare_outputs("instance", ref, outputs([one_missing, two_missing, one_missing]), max_detections=4)
    assert (result.passed, result.item, result.matched) == (False, 1, 2)


def test_fp16_outputs_are_compared_in_float32():
    from export.compare import detections_from_outputs

    item = dets([[0, 0, 10, 10]], [0.9])
    got = detections_from_outputs(outputs([item], dtype=np.float16))
    assert got["boxes"].dtype == got["scores"].dtype == got["masks"].dtype == np.float32


def test_the_semantic_comparison_uses_the_given_limits():
    a = np.zeros((1, 10, 10), np.uint8)
    result = cmp.compare_outputs("semantic", {"MASK": a}, {"MASK": a}, limits=cmp.FP16_GATE)
    assert result.summary == "pixel agreement 100.000000% (need >= 99.50%)"


def test_by_default_an_extra_candidate_detection_counts_as_untied():
    """Without a list size or threshold, the reference's cut is 0 for an empty list: any candidate detection is a
    miss no tie explains."""
    empty = dets([], [])
    extra = dets([[0, 0, 10, 10]], [0.6])
    result = cmp.compare_outputs("instance", outputs([empty]), outputs([extra]))
    assert (result.passed, result.unmatched_untied) == (False, 1)


def test_among_items_with_equal_matches_more_misses_and_larger_box_errors_are_worse():
    base = [[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100], [600, 0, 700, 100]]
    ref = dets(base, [0.9, 0.8, 0.7, 0.6])
    # Item 0: one detection missing (score above any cut: untied). Item 1: same matches, no untied miss (its
    # missing detection ties the candidate's cut, 0.6 against a full list cut at 0.6).
    limits = cmp.Thresholds(matched_fraction=0.5, untied_fraction=0.5)  # both items pass
    untied = dets(base[1:] + [[800, 0, 900, 100]], [0.8, 0.7, 0.6, 0.6])
    tied = dets(base[:3] + [[800, 0, 900, 100]], [0.9, 0.8, 0.7, 0.6])
    for items, worst in (([tied, untied], 1), ([untied, tied], 0)):
        result = cmp.compare_outputs("instance", outputs([ref, ref]), outputs(items), max_detections=4, limits=limits)
        assert (result.passed, result.item, result.matched, result.unmatched_untied) == (True, worst, 3, 1)
    # Box errors: both pass; the one further off is reported.
    near = dets([[0.1, 0, 100.1, 100]] + base[1:], [0.9, 0.8, 0.7, 0.6])
    far = dets([[0.4, 0, 100.4, 100]] + base[1:], [0.9, 0.8, 0.7, 0.6])
    for items, worst in (([near, far], 1), ([far, near], 0)):
        result = cmp.compare_outputs("instance", outputs([ref, ref]), outputs(items), max_detections=4)
        assert result.passed and result.item == worst and abs(result.max_box_error_px - 0.4) < 1e-4


def test_each_batch_item_is_compared_with_its_own_counterpart():
    first = dets([[0, 0, 10, 10]], [0.9])
    second = dets([[50, 50, 90, 90], [0, 50, 10, 60]], [0.8, 0.7])
    both = outputs([first, second])
    result = cmp.compare_outputs("instance", both, both, max_detections=4)
    assert result.passed and result.item in (0, 1)
    assert not cmp.compare_outputs("instance", both, outputs([second, first]), max_detections=4).passed


def test_instance_comparison_uses_the_given_limits_and_score_threshold():
    ref = dets([[0, 0, 100, 100]], [0.9])
    off = dets([[0.8, 0, 100.8, 100]], [0.9])  # 0.8 px: within the FP16 gate, not parity
    assert not cmp.compare_outputs("instance", outputs([ref]), outputs([off]), max_detections=4).passed
    assert cmp.compare_outputs("instance", outputs([ref]), outputs([off]), max_detections=4,
                               limits=cmp.FP16_GATE).passed
    # An extra candidate detection scored at the reference's threshold (0.5): a tie at the cut, excused only when
    # the threshold reaches the comparison.
    extra = dets([[0, 0, 100, 100], [300, 300, 400, 400]], [0.9, 0.5004])
    limits = cmp.Thresholds(matched_fraction=0.5)
    tied = cmp.compare_outputs("instance", outputs([ref]), outputs([extra]), max_detections=4, limits=limits,
                               score_threshold=0.5)
    assert (tied.passed, tied.unmatched_untied) == (True, 0)
    untied = cmp.compare_outputs("instance", outputs([ref]), outputs([extra]), max_detections=4, limits=limits)
    assert (untied.passed, untied.unmatched_untied) == (False, 1)


def test_num_detections_may_come_as_a_flat_batch_vector():
    from export.compare import detections_from_outputs

    outs = outputs([dets([[0, 0, 10, 10]], [0.9]), dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8])])
    outs["NUM_DETECTIONS"] = outs["NUM_DETECTIONS"].reshape(-1)  # [B] instead of [B, 1]
    assert [len(detections_from_outputs(outs, b)["boxes"]) for b in (0, 1)] == [1, 2]


def test_one_candidate_cannot_match_two_reference_detections():
    ref = dets([[0, 0, 100, 100], [0, 0, 100, 100.2]], [0.9, 0.9])
    cand = dets([[0, 0, 100, 100]], [0.9])
    result = cmp.compare_detections(ref, cand, max_detections=100, limits=cmp.Thresholds(matched_fraction=0.5))
    assert result.matched == 1 and result.max_box_error_px == 0.0


def test_tie_tolerances_are_inclusive():
    """Scores chosen exactly representable: a gap of exactly ``tie_tolerance`` is still a tie."""
    limits = cmp.Thresholds(tie_tolerance=0.25, matched_fraction=0.5)
    far = [[1000, 1000, 1010, 1010]]
    a, b = [0, 0, 100, 100], [0, 25, 100, 125]  # IoU 0.6: an NMS tie when the scores tie
    nms = cmp.compare_detections(dets(far + [a], [0.9, 0.5]), dets(far + [b], [0.9, 0.75]), max_detections=100,
                                 limits=limits)
    assert (nms.passed, nms.unmatched_untied) == (True, 0)
    # A missing detection scored exactly the other side's cut (0.5, a full list) plus the tolerance is tied.
    ref = dets(far + [[200, 200, 300, 300]], [0.9, 0.75])
    cand = dets(far + [[400, 400, 500, 500]], [0.9, 0.5])
    cut = cmp.compare_detections(ref, cand, max_detections=2, limits=limits)
    assert cut.unmatched_untied == 0


def test_a_candidate_mask_probability_of_one_half_is_foreground():
    assert cmp.compare_detections(dets([[0, 0, 9, 9]], [0.9], mask=0.9), dets([[0, 0, 9, 9]], [0.9], mask=0.5),
                                  max_detections=100).mask_agreement == 1.0


def test_box_iou_of_boxes_apart_on_one_axis_touching_or_tiny():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[12, 0, 20, 10], [0, 12, 10, 20], [9.5, 0, 20, 10]], np.float32)
    # Apart on x only / on y only: no overlap (not a negative one); 0.5 px of overlap: 5 / (100 + 105 - 5).
    np.testing.assert_allclose(cmp.box_iou(a, b), [[0.0, 0.0, 5 / 200]], rtol=1e-12)
    tiny = np.array([[0, 0, 0.5, 0.5]], np.float32)
    assert cmp.box_iou(tiny, tiny)[0, 0] == 1.0


def test_no_detections_on_either_side_report_a_full_match():
    result = cmp.compare_detections(dets([], []), dets([], []), max_detections=100)
    assert result.passed and result.matched_fraction == 1.0
    assert result.summary.startswith("0 of 0/0 detections matched (IoU > 0.99; 100.0%, need >= 95%), 0 unmatched")
    assert not cmp.compare_detections(dets([[0, 0, 10, 10]], [0.9]), dets([], []), max_detections=100).passed


def test_an_output_agrees_with_itself_when_many_boxes_coincide():
    """Equal IoUs are matched in index order: a list compared with itself pairs each detection with itself, even
    when 30 detections share one box and 30 more nearly do (all masks differ)."""
    n = 60
    shifts = np.random.default_rng(0).uniform(0, 0.5, n // 2)
    boxes = [[0, 0, 100, 100]] * (n // 2) + [[x, 0, x + 100, 100] for x in shifts]
    item = dets(boxes, np.linspace(0.9, 0.5, n))
    item["masks"] = np.zeros((n, 28, 28), np.float32)
    for k in range(n):
        item["masks"][k, k % 28, :] = 1.0
        item["masks"][k, :, (k * 5) % 28] = 1.0
    result = cmp.compare_detections(item, item, max_detections=100)
    assert (result.passed, result.matched, result.max_box_error_px, result.mask_agreement) == (True, n, 0.0, 1.0)
