"""Letterbox and un-letterbox against geometry worked out by hand (not with the code's own formulas).

Conventions pinned here: the image is resized to fit (aspect ratio kept, sides rounded to the nearest pixel), centred
with the odd padding pixel at the bottom / right; nearest-neighbour mapping back samples pixel centres (PIL's and
OpenCV's convention); boxes map back per axis, so the resized image's edges land exactly on the original's edges.
Only the public API is used: ``letterbox``, ``Letterbox``, ``unletterbox_mask``, ``unletterbox_boxes``.
"""

import numpy as np
import pytest

from client.postprocess import unletterbox_boxes, unletterbox_mask
from client.preprocess import PAD_COLOUR, Letterbox, letterbox

# (image h, w) -> (model h, w): expected (resized h, w, pad top, pad left), computed by hand in the comments.
CASES = [
    # 100x200 into 128x128: scale 0.64 -> 64x128, pad 64 rows: 32 top / 32 bottom (even).
    ((100, 200), (128, 128), (64, 128, 32, 0)),
    # 300x420 into 128x128: scale 128/420 -> 91.43 -> 91 rows, pad 37: 18 top / 19 bottom (odd).
    ((300, 420), (128, 128), (91, 128, 18, 0)),
    # 420x300 (portrait) into 128x128: 91 columns, pad 37: 18 left / 19 right.
    ((420, 300), (128, 128), (128, 91, 0, 18)),
    # 300x300 into a non-square 96x160 model: scale 0.32 -> 96x96, pad 64 columns: 32 / 32.
    ((300, 300), (96, 160), (96, 96, 0, 32)),
    # 50x41 into 128x96: scale min(2.56, 2.3415) -> 117.07 -> 117 rows x 96, pad 11 rows: 5 top / 6 bottom.
    ((50, 41), (128, 96), (117, 96, 5, 0)),
    # 7x5 into 64x64: scale 64/7 -> 45.71 -> 46 columns, pad 18: 9 / 9; upscaling.
    ((7, 5), (64, 64), (64, 46, 0, 9)),
    # Same size: no resize, no padding.
    ((64, 96), (64, 96), (64, 96, 0, 0)),
]


@pytest.mark.parametrize(("image", "model", "expected"), CASES)
def test_letterbox_geometry_matches_hand_computation(image, model, expected):
    colour = (200, 10, 90)
    rgb = np.empty((*image, 3), np.uint8)
    rgb[:] = colour
    canvas, box = letterbox(rgb, *model)
    nh, nw, top, left = expected
    assert isinstance(box, Letterbox)
    assert (box.original_height, box.original_width) == image
    assert (box.resized_height, box.resized_width, box.pad_top, box.pad_left) == expected
    assert canvas.shape == (*model, 3) and canvas.dtype == np.uint8
    inside = np.zeros(model, bool)
    inside[top:top + nh, left:left + nw] = True
    # The image fills exactly its rectangle (a one-pixel shift leaves a pad row inside or image outside).
    assert (canvas[inside] == colour).all()
    assert (canvas[~inside] == PAD_COLOUR).all()


def test_letterbox_keeps_the_image_content_in_place():
    """A left/right and top/bottom split image: the split stays in the middle of the resized region and the colours
    stay in RGB order."""
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :40] = (255, 0, 0)
    rgb[:, 40:] = (0, 0, 255)
    canvas, box = letterbox(rgb, 64, 64)  # scale 0.8 -> 48x64, pad 16: 8 / 8
    assert (box.resized_height, box.pad_top) == (48, 8)
    assert (canvas[8:56, :31] == (255, 0, 0)).all() and (canvas[8:56, 33:] == (0, 0, 255)).all()


def coded_mask(height, width):
    """A model-frame mask whose value says where it came from: row * 10 + column (rows/columns < 10 here)."""
    return (np.arange(height)[:, None] * 10 + np.arange(width)[None, :]).astype(np.int32)


def test_unletterbox_mask_samples_pixel_centres_even_padding():
    """3x4 image in an 8x8 model: scale 2 -> 6x8, top 1. Original row r takes model row 1 + floor((r + 0.5) * 2)
    = 2, 4, 6; column c takes floor((c + 0.5) * 2) = 1, 3, 5, 7."""
    box = Letterbox(3, 4, 2.0, 1, 0, 6, 8)
    expected = np.array([[21, 23, 25, 27], [41, 43, 45, 47], [61, 63, 65, 67]])
    np.testing.assert_array_equal(unletterbox_mask(coded_mask(8, 8), box), expected)


def test_unletterbox_mask_samples_pixel_centres_odd_padding():
    """5x3 image in an 8x8 model: scale 1.6 -> 8 rows x 4.8 -> 5 columns, pad 3 columns: left 1. Rows:
    floor((r + 0.5) * 8 / 5) = 0, 2, 4, 5, 7. Columns: 1 + floor((c + 0.5) * 5 / 3) = 1, 3, 5."""
    _, box = letterbox(np.zeros((5, 3, 3), np.uint8), 8, 8)
    assert (box.resized_height, box.resized_width, box.pad_top, box.pad_left) == (8, 5, 0, 1)
    expected = np.array([[1, 3, 5], [21, 23, 25], [41, 43, 45], [51, 53, 55], [71, 73, 75]])
    np.testing.assert_array_equal(unletterbox_mask(coded_mask(8, 8), box), expected)


def test_unletterbox_mask_downsamples_an_upscaled_image_without_touching_the_pad():
    """2x2 image in a 9x9 model: scale 4.5 -> 9x9, no pad. Row/column k takes floor((k + 0.5) * 4.5) = 2, 6."""
    _, box = letterbox(np.zeros((2, 2, 3), np.uint8), 9, 9)
    np.testing.assert_array_equal(unletterbox_mask(coded_mask(9, 9), box), [[22, 26], [62, 66]])
    # 1x3 in 6x6: 2x6, pad 4 rows: top 2. Row: 2 + floor(0.5 * 2) = 3; columns floor((c + 0.5) * 2) = 1, 3, 5.
    _, box = letterbox(np.zeros((1, 3, 3), np.uint8), 6, 6)
    assert (box.pad_top, box.resized_height) == (2, 2)
    np.testing.assert_array_equal(unletterbox_mask(coded_mask(6, 6), box), [[31, 33, 35]])


@pytest.mark.parametrize(("image", "model", "expected"), CASES)
def test_the_resized_region_maps_back_onto_the_whole_image(image, model, expected):
    """The corners of the resized region are the corners of the image, whatever the rounding."""
    nh, nw, top, left = expected
    _, box = letterbox(np.zeros((*image, 3), np.uint8), *model)
    region = np.array([[left, top, left + nw, top + nh]], np.float32)
    np.testing.assert_allclose(unletterbox_boxes(region, box), [[0, 0, image[1], image[0]]], atol=1e-3)


def test_boxes_map_back_per_axis_with_odd_padding():
    """300x420 in 128x128: 91x128 at top 18. x scales by 420/128, y by 300/91 (not the nominal 128/420)."""
    _, box = letterbox(np.zeros((300, 420, 3), np.uint8), 128, 128)
    model_boxes = np.array([[32, 18, 64, 63.5], [0, 40.75, 128, 109]], np.float32)
    want = [[32 * 420 / 128, 0, 64 * 420 / 128, 45.5 * 300 / 91], [0, 22.75 * 300 / 91, 420, 300]]
    np.testing.assert_allclose(unletterbox_boxes(model_boxes, box), want, rtol=1e-5, atol=1e-3)


def test_boxes_in_the_padding_are_clipped_to_the_image():
    _, box = letterbox(np.zeros((100, 200, 3), np.uint8), 128, 128)  # 64x128 at top 32
    out = unletterbox_boxes(np.array([[-5, 0, 140, 20], [10, 100, 20, 128]], np.float32), box)
    np.testing.assert_allclose(out, [[0, 0, 200, 0], [10 * 200 / 128, 100, 20 * 200 / 128, 100]], atol=1e-3)
