"""Exact geometry of post-processing: the 1-D bilinear weights against torch's interpolate, the grown-box crop
origins and sizes of pasted masks (torchvision's rules), thresholds, boxes outside the image, and class counts."""

from __future__ import annotations

import numpy as np
import pytest

from client import postprocess as post
from client.preprocess import fit


@pytest.mark.parametrize(("out_size", "in_size"), [(7, 30), (30, 7), (1, 5), (5, 1), (30, 30), (13, 30)])
def test_bilinear_weights_match_torch_interpolate(out_size, in_size):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(out_size * 100 + in_size).random(in_size).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(x)[None, None], size=out_size, mode="linear",
                                           align_corners=False)[0, 0].numpy()
    weights = post._bilinear_matrix(out_size, in_size)
    assert weights.shape == (out_size, in_size) and weights.dtype == np.float32
    np.testing.assert_allclose(weights @ x, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


def test_bilinear_rows_can_be_taken_in_a_window():
    full = post._bilinear_matrix(40, 30)
    np.testing.assert_array_equal(post._bilinear_matrix(40, 30, 5, 17), full[5:17])
    np.testing.assert_array_equal(post._bilinear_matrix(40, 30, 0, None), full)


def test_grown_boxes_follow_torchvision_and_truncate_towards_zero():
    boxes = np.array([[10, 20, 40, 30], [-10, -10, 5, 5]], np.float32)
    # m=28: sides grow by 30/28 about the centre; int64 cast truncates (-10.54 -> -10, not -11).
    np.testing.assert_array_equal(post._grown_boxes(boxes, 28), [[8, 19, 41, 30], [-10, -10, 5, 5]])


def test_crop_origins_and_sizes_are_the_grown_box_clipped_to_the_image():
    masks = np.ones((3, 28, 28), np.float32)
    boxes = np.array([[10, 20, 40, 30], [-10, -10, 5, 5], [55, 45, 70, 60]], np.float32)
    crops, origins = post.paste_masks_compact(masks, boxes, 50, 60)
    assert origins.dtype == np.int64
    np.testing.assert_array_equal(origins, [[8, 19], [0, 0], [54, 44]])
    assert [c.shape for c in crops] == [(12, 34), (6, 6), (6, 6)]
    assert all(c.dtype == bool for c in crops)
    assert crops[0][5, 17] and not crops[0][0, 0]  # inside the box / on the grown (padded) border


def test_a_box_entirely_outside_the_image_gives_an_empty_crop():
    masks = np.ones((2, 28, 28), np.float32)
    boxes = np.array([[100, 5, 120, 10], [5, 100, 10, 120]], np.float32)
    crops, origins = post.paste_masks_compact(masks, boxes, 50, 60)
    assert [(c.shape, c.dtype) for c in crops] == [((0, 0), np.dtype(bool))] * 2
    np.testing.assert_array_equal(origins, [[60, 4], [4, 50]])
    assert not post.paste_masks(masks, boxes, 50, 60).any()


def test_no_detections_give_no_crops():
    crops, origins = post.paste_masks_compact(np.zeros((0, 28, 28), np.float32), np.zeros((0, 4), np.float32), 5, 5)
    assert crops == [] and origins.shape == (0, 2) and origins.dtype == np.int64


def test_the_threshold_is_strict_and_defaults_to_one_half():
    masks = np.full((1, 28, 28), 0.5, np.float32)
    boxes = np.array([[10, 10, 40, 40]], np.float32)
    assert not post.paste_masks(masks, boxes, 50, 50).any()
    assert post.paste_masks(masks, boxes, 50, 50, threshold=0.49)[0, 25, 25]
    assert post.paste_masks_compact(masks, boxes, 50, 50, 0.49)[0][0][10, 10]


def test_pasting_matches_torchvision_exactly_with_boxes_over_the_edge():
    torch = pytest.importorskip("torch")
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rng = np.random.default_rng(3)
    n, h, w = 16, 61, 83
    masks = rng.random((n, 28, 28)).astype(np.float32)
    x0, y0 = rng.uniform(-8, w - 5, n), rng.uniform(-8, h - 5, n)
    boxes = np.stack([x0, y0, x0 + rng.uniform(2, 40, n), y0 + rng.uniform(2, 30, n)], 1).astype(np.float32)
    ours = post.paste_masks(masks, boxes, h, w)
    ref = paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (h, w))[:, 0].numpy() > 0.5
    assert ours.shape == ref.shape == (n, h, w) and ours.dtype == bool
    assert (ours != ref).sum() <= 3  # float32 ties at the threshold only


def test_boxes_map_back_scaled_and_clipped_on_both_sides():
    box = fit(100, 200, 64, 64)  # scale 0.32, pad_top 16, resized 32x64
    out = post.unletterbox_boxes(np.array([[0, 16, 64, 48], [-4, 0, 70, 60], [32, 32, 32, 32]], np.float32), box)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0, 0, 200, 100], [0, 0, 200, 100], [100, 50, 100, 50]], atol=1e-4)


@pytest.mark.parametrize(("original", "model"), [((10, 7), (32, 32)), ((50, 90), (16, 16)), ((3, 3), (8, 8))])
def test_class_counts_equal_counting_the_unletterboxed_mask(original, model):
    box = fit(*original, *model)
    mask = np.random.default_rng(sum(original)).integers(0, 5, model).astype(np.int64)
    full = post.unletterbox_mask(mask, box)
    assert full.shape == original
    counts = post.unletterbox_counts(mask, box)
    assert counts.dtype == np.int64
    want = np.bincount(full.ravel())
    np.testing.assert_array_equal(counts[:len(want)], want)
    assert not counts[len(want):].any()


def test_nearest_index_samples_pixel_centres_and_stays_in_range():
    np.testing.assert_array_equal(post._nearest_index(4, 2), [0, 0, 1, 1])
    np.testing.assert_array_equal(post._nearest_index(2, 4), [1, 3])
    np.testing.assert_array_equal(post._nearest_index(3, 3), [0, 1, 2])


def test_a_zero_width_or_height_box_pastes_like_torchvision():
    """A degenerate box is one pixel wide (torchvision: ``max(w, 1)``), sampled at the mask's centre column/row."""
    torch = pytest.importorskip("torch")
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    stripes = np.zeros((2, 28, 28), np.float32)
    stripes[0, :, 5:9] = 1.0  # columns far from the centre: a one-pixel-wide box samples the centre, not these
    stripes[1, 5:9, :] = 1.0
    boxes = np.array([[10, 10, 10, 30], [10, 10, 30, 10]], np.float32)
    ours = post.paste_masks(stripes, boxes, 40, 40)
    ref = paste_masks_in_image(torch.from_numpy(stripes)[:, None], torch.from_numpy(boxes), (40, 40))[:, 0].numpy()
    np.testing.assert_array_equal(ours, ref > 0.5)
    assert not ours.any()  # the centre is empty; a two-pixel-wide resize would reach the stripe
