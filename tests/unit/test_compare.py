import numpy as np

from export.compare import compare_detections, compare_masks


def dets(boxes, scores, labels=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    return {"boxes": boxes, "scores": np.asarray(scores, np.float32),
            "labels": np.asarray(labels if labels is not None else [1] * n, np.int32),
            "masks": np.full((n, 28, 28), 0.9, np.float32)}


def test_masks_agreement_is_the_fraction_of_equal_pixels():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[0, 0] = 1
    result = compare_masks(a, b)
    assert result.pixel_agreement == 0.99 and not result.passed


def test_detections_match_by_iou_not_by_index():
    ref = dets([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8])
    cand = dets([[20, 20, 40, 40.1], [0, 0, 10, 10]], [0.8, 0.9])
    result = compare_detections(ref, cand, max_detections=100)
    assert result.passed and result.matched == 2


def test_a_missing_detection_fails_unless_it_ties_at_the_cut():
    ref = dets([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.5, 0.5])
    cand = dets([[0, 0, 10, 10], [20, 20, 40, 40], [70, 70, 80, 80]], [0.9, 0.5, 0.5])
    assert compare_detections(ref, cand, max_detections=3).passed  # full list: the 0.5s tie at the cut
    assert not compare_detections(ref, cand, max_detections=100).passed  # no cut: every detection must match


def test_labels_must_agree_and_boxes_stay_within_tolerance():
    ref = dets([[0, 0, 200, 200]], [0.9], [1])
    assert not compare_detections(ref, dets([[0, 0, 200, 200]], [0.9], [2]), max_detections=100).passed
    shifted = compare_detections(ref, dets([[0.6, 0, 200.6, 200]], [0.9]), max_detections=100)
    assert shifted.matched == 1 and not shifted.passed and abs(shifted.max_box_error_px - 0.6) < 1e-4


def test_zero_detections_on_both_sides_agree():
    assert compare_detections(dets([], []), dets([], []), max_detections=100).passed
