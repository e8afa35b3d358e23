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


def test_load_image_takes_paths_bytes_pil_images_and_arrays(tmp_path):
    rgb = np.zeros((6, 9, 3), np.uint8)
    rgb[:, :3] = (250, 5, 5)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    for source in (tmp_path / "a.png", str(tmp_path / "a.png"), (tmp_path / "a.png").read_bytes(),
                   Image.fromarray(rgb), rgb):
        out = load_image(source)
        assert out.dtype == np.uint8 and out.shape == (6, 9, 3), type(source)
        np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 4), np.uint8), np.zeros((1, 4, 4, 3), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8)])
def test_load_image_refuses_arrays_that_are_not_uint8_rgb(bad):
    with pytest.raises(ClientError, match=r"Bad image array .*: expected uint8 \[H, W, 3\] RGB\."):
        load_image(bad)


def test_undecodable_bytes_are_named_as_bytes():
    with pytest.raises(ClientError, match=r"^Cannot read image `<bytes>`: not a decodable image"):
        load_image(b"definitely not an image")


def test_letterbox_resizes_bilinearly_with_pixel_centres():
    """A 1x2 image [0, 255] upscaled x2 into a 2x4 model: bilinear with half-pixel centres gives 0, 64, 191, 255
    (source x = (x + 0.5) / 2 - 0.5, clamped) in every channel and row."""
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 1] = 255
    canvas, box = letterbox(rgb, 2, 4)
    assert (box.resized_height, box.resized_width, box.pad_top, box.pad_left) == (2, 4, 0, 0)
    for row in canvas:
        for channel in range(3):
            np.testing.assert_allclose(row[:, channel], [0, 64, 191, 255], atol=1)


def test_an_image_already_at_the_model_size_is_passed_through_unchanged():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    canvas, box = letterbox(rgb, 32, 48)
    np.testing.assert_array_equal(canvas, rgb)
    assert box.scale == 1.0


def test_a_tiny_image_keeps_at_least_one_pixel_per_side():
    canvas, box = letterbox(np.full((1, 300, 3), 9, np.uint8), 64, 64)  # 300:1 -> 0.21 rows: kept as 1
    assert (box.resized_height, box.resized_width, box.pad_top) == (1, 64, 31)
    assert (canvas[31] == 9).all() and (canvas[30] == PAD_COLOUR).all() and (canvas[32] == PAD_COLOUR).all()
    canvas, box = letterbox(np.full((300, 1, 3), 9, np.uint8), 64, 64)
    assert (box.resized_height, box.resized_width, box.pad_left) == (64, 1, 31)
