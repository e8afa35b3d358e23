import io

import numpy as np
import pytest
from PIL import Image

from client.errors import ClientError
from client.postprocess import unletterbox_boxes, unletterbox_mask
from client.preprocess import PAD_COLOUR, letterbox, load_image


def test_letterbox_keeps_aspect_ratio_and_centres_the_image():
    rgb = np.full((100, 200, 3), 7, np.uint8)
    canvas, box = letterbox(rgb, 128, 128)
    assert canvas.shape == (128, 128, 3) and canvas.dtype == np.uint8
    assert (box.resized_height, box.resized_width, box.pad_top, box.pad_left) == (64, 128, 32, 0)
    assert (canvas[32:96] == 7).all()
    assert (canvas[:32] == PAD_COLOUR).all() and (canvas[96:] == PAD_COLOUR).all()


@pytest.mark.parametrize("shape", [(64, 32), (128, 128), (37, 91), (300, 17), (1, 1)])
def test_mask_round_trip_through_the_letterbox_is_exact(shape):
    """A label map drawn at the original size, letterboxed like the image and mapped back, is unchanged wherever the
    scale is integral, and keeps its geometry (size, position) always."""
    h, w = shape
    # A 4x4 grid of classes: shapes survive resampling, every pixel still matters at integral scales.
    labels = ((np.arange(h)[:, None] * 4 // h) * 4 + np.arange(w)[None, :] * 4 // w).astype(np.uint8)
    _, box = letterbox(np.zeros((h, w, 3), np.uint8), 256, 256)
    # Model-frame mask: nearest-upsample the labels into the letterbox region, pad elsewhere with 255.
    model = np.full((256, 256), 255, np.uint8)
    rows = np.minimum((np.arange(box.resized_height) + 0.5) * h / box.resized_height, h - 1).astype(int)
    cols = np.minimum((np.arange(box.resized_width) + 0.5) * w / box.resized_width, w - 1).astype(int)
    model[box.pad_top:box.pad_top + box.resized_height, box.pad_left:box.pad_left + box.resized_width] = \
        labels[rows[:, None], cols[None, :]]
    back = unletterbox_mask(model, box)
    assert back.shape == (h, w)
    assert not (back == 255).any(), "padding leaked into the original frame"
    if (256 / max(h, w)).is_integer():
        np.testing.assert_array_equal(back, labels)
    else:
        assert np.mean(back == labels) > 0.9


def test_boxes_map_back_to_original_pixels():
    _, box = letterbox(np.zeros((100, 200, 3), np.uint8), 128, 128)
    model_boxes = np.array([[0, 32, 128, 96], [64, 48, 96, 80]], np.float32)
    np.testing.assert_allclose(unletterbox_boxes(model_boxes, box), [[0, 0, 200, 100], [100, 25, 150, 75]])


def test_load_image_applies_exif_orientation():
    pil = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", exif=exif)
    assert load_image(buffer.getvalue()).shape == (20, 10, 3)


def test_load_image_converts_grey_and_rgba_to_rgb():
    for mode in ("L", "RGBA", "P"):
        buffer = io.BytesIO()
        Image.new(mode, (5, 4)).save(buffer, format="PNG")
        assert load_image(buffer.getvalue()).shape == (4, 5, 3)


def test_unreadable_images_give_one_clear_error(tmp_path):
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not an image")
    with pytest.raises(ClientError, match=r"Cannot read image `.*notes\.jpg`: not a decodable image"):
        load_image(bogus)
    with pytest.raises(ClientError, match=r"no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ClientError, match=r"expected uint8 \[H, W, 3\] RGB"):
        load_image(np.zeros((4, 4), np.float32))
