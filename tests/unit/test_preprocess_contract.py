"""Exact preprocessing behaviour: letterbox geometry and padding, the wording of every input error, pixel budgets
(boundary included), the conversion of every unusual PIL mode, frame counts and EXIF-rotated sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from client import preprocess as pp
from client.errors import ClientError

PAD = np.array([124, 116, 104], np.uint8)


def png(width, height, mode="RGB", fmt="PNG", **save):
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, fmt, **save)
    return buf.getvalue()


# --- geometry -------------------------------------------------------------------------------------------------------

def test_the_pad_colour_is_the_imagenet_mean():
    assert pp.PAD_COLOUR == (124, 116, 104)


@pytest.mark.parametrize(("h", "w", "mh", "mw", "box"), [
    (100, 200, 64, 64, (100, 200, 0.32, 16, 0, 32, 64)),
    (200, 100, 64, 64, (200, 100, 0.32, 0, 16, 64, 32)),
    (64, 64, 64, 64, (64, 64, 1.0, 0, 0, 64, 64)),
    (33, 64, 64, 64, (33, 64, 1.0, 15, 0, 33, 64)),       # odd padding: the extra row goes to the bottom
    (1, 1000, 64, 64, (1, 1000, 0.064, 31, 0, 1, 64)),    # a 0.064-pixel row still gets one row
    (10, 20, 40, 100, (10, 20, 4.0, 0, 10, 40, 80)),      # upscaling, non-square model
])
def test_fit_geometry(h, w, mh, mw, box):
    got = pp.fit(h, w, mh, mw)
    assert (got.original_height, got.original_width, got.scale, got.pad_top, got.pad_left, got.resized_height,
            got.resized_width) == pytest.approx(box)


@pytest.mark.parametrize(("h", "w"), [(0, 5), (5, 0), (-1, 5)])
def test_fit_refuses_an_empty_image(h, w):
    with pytest.raises(ClientError, match=rf"^Bad image size {w}x{h}: an image needs at least one pixel\.$"):
        pp.fit(h, w, 64, 64)


def test_fit_accepts_a_single_pixel():
    assert pp.fit(1, 1, 64, 64).resized_height == 64


def test_a_wide_image_is_padded_above_and_below_only_and_kept_exactly():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    canvas, box = pp.letterbox(rgb, 64, 64)
    assert canvas.dtype == np.uint8 and canvas.shape == (64, 64, 3)
    assert (box.pad_top, box.pad_left) == (16, 0)
    np.testing.assert_array_equal(canvas[16:48], rgb)
    assert (canvas[:16] == PAD).all() and (canvas[48:] == PAD).all()


def test_a_tall_image_is_padded_left_and_right_only_and_kept_exactly():
    rgb = np.random.default_rng(1).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    canvas, box = pp.letterbox(rgb, 64, 64)
    np.testing.assert_array_equal(canvas[:, 16:48], rgb)
    assert (canvas[:, :16] == PAD).all() and (canvas[:, 48:] == PAD).all()


def test_an_image_that_must_be_resized_fills_exactly_its_box():
    rgb = np.full((100, 200, 3), 7, np.uint8)
    canvas, box = pp.letterbox(rgb, 64, 64)
    assert (canvas[16:48] == 7).all()
    assert (canvas[:16] == PAD).all() and (canvas[48:] == PAD).all()


def test_prepare_matches_letterbox_for_every_input_kind():
    rgb = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    want, want_box = pp.letterbox(rgb, 64, 64)
    for image in (rgb, buf.getvalue(), Image.fromarray(rgb)):
        canvas, box, frames = pp.prepare(image, 64, 64)
        assert box == want_box and frames == 1 and canvas.dtype == np.uint8
        np.testing.assert_array_equal(canvas, want)


def test_prepare_leaves_a_callers_pil_image_open_and_closes_its_own(tmp_path):
    pil = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    pp.prepare(pil, 16, 16)
    assert np.asarray(pil).shape == (8, 8, 3)  # still usable


# --- input errors ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "what"), [
    ([1, 2], "list"),
    (np.zeros((2, 2, 3), np.float32), r"float32\[2, 2, 3\]"),
    (np.zeros((2, 2), np.uint8), r"uint8\[2, 2\]"),
    (np.zeros((2, 2, 4), np.uint8), r"uint8\[2, 2, 4\]"),
])
def test_check_array_names_what_it_got(value, what):
    with pytest.raises(ClientError, match=rf"^Bad image array {what}: expected uint8 \[H, W, 3\] RGB\.$"):
        pp.check_array(value)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3)])
def test_check_array_refuses_an_array_without_pixels(shape):
    with pytest.raises(ClientError, match=rf"^Bad image array uint8\[{shape[0]}, {shape[1]}, 3\]: it has no pixels\.$"):
        pp.check_array(np.zeros(shape, np.uint8))


def test_check_array_returns_its_input():
    rgb = np.zeros((1, 1, 3), np.uint8)
    assert pp.check_array(rgb) is rgb


def test_names_of_byte_sources_and_paths():
    assert pp._name(b"x") == pp._name(bytearray(b"x")) == pp._name(memoryview(b"x")) == "<bytes>"
    assert pp._name("a/b.png") == "a/b.png"


def test_open_image_refuses_other_types():
    with pytest.raises(ClientError, match=r"^Bad image of type int: expected a path, bytes, a PIL image or a uint8 "
                                          r"\[H, W, 3\] RGB array\.$"):
        pp.open_image(3)


def test_open_image_reads_bytearray_and_memoryview():
    data = png(4, 3)
    for source in (bytearray(data), memoryview(data)):
        assert pp.open_image(source).size == (4, 3)


def test_open_image_errors_name_the_source(tmp_path):
    with pytest.raises(ClientError, match=r"^Cannot read image `.*nope\.png`: no such file\.$"):
        pp.open_image(tmp_path / "nope.png")
    with pytest.raises(ClientError, match=r"^Cannot read image `.*`: it is a folder\.$"):
        pp.open_image(tmp_path)
    with pytest.raises(ClientError, match=r"^Cannot read image `<bytes>`: not a decodable image \(.+\)\.$"):
        pp.open_image(b"not an image")


def test_the_pixel_budget_is_inclusive_and_worded_exactly():
    data = png(10, 12)
    assert pp.open_image(data, max_pixels=120).size == (10, 12)
    with pytest.raises(ClientError, match=r"^Image `<bytes>` is 10x12 \(120 pixels\), above the budget of 119 pixels: "
                                          r"shrink it first or raise max_pixels \(--max-pixels\)\.$"):
        pp.open_image(data, max_pixels=119)
    with pytest.raises(ClientError, match=r"is 1000x1100 \(1,100,000 pixels\), above the budget of 1,000 pixels"):
        pp.open_image(png(1000, 1100, mode="L"), max_pixels=1000)


def test_pils_own_bomb_check_is_reported_with_our_budget(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(ClientError, match=r"^Image `<bytes>` is above the budget of 5,000 pixels \(PIL: Image size "
                                          r"\(100 pixels\) exceeds limit of 20 pixels.*[^.]\)\.$"):
        pp.open_image(png(10, 10), max_pixels=5000)


def test_the_default_budget_is_pils():
    assert pp.DEFAULT_MAX_PIXELS == (Image.MAX_IMAGE_PIXELS or 89_478_485)


# --- modes ----------------------------------------------------------------------------------------------------------

def grey_of(pil):
    rgb = np.asarray(pp.to_rgb(pil))
    assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0].ravel().tolist()


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_grey_keeps_its_high_byte(mode):
    order = "<u2" if mode == "I;16" else ">u2"
    pil = Image.frombytes(mode, (4, 1), np.array([0, 255, 256, 65535], order).tobytes())
    assert pil.mode == mode
    assert grey_of(pil) == [0, 0, 1, 255]


def test_32_bit_grey_is_taken_as_8_bit_when_it_fits_and_as_16_bit_otherwise():
    assert grey_of(Image.fromarray(np.array([[0, 7, 255]], np.int32), "I")) == [0, 7, 255]
    assert grey_of(Image.fromarray(np.array([[0, 256, 65535, 70000]], np.int32), "I")) == [0, 1, 255, 255]


def test_float_grey_in_0_1_or_0_255():
    assert grey_of(Image.fromarray(np.array([[0.0, 0.5, 1.0, -1.0]], np.float32), "F")) == [0, 128, 255, 0]
    assert grey_of(Image.fromarray(np.array([[0.0, 1.0, 100.4, 300.0]], np.float32), "F")) == [0, 1, 100, 255]


def test_rgb_is_returned_as_is_and_other_modes_convert():
    pil = Image.new("RGB", (2, 2), (1, 2, 3))
    assert pp.to_rgb(pil) is pil
    assert np.asarray(pp.to_rgb(Image.new("RGBA", (1, 1), (9, 8, 7, 0)))).tolist() == [[[9, 8, 7]]]


# --- frames and orientation ------------------------------------------------------------------------------------------

def gif(frames):
    buf = io.BytesIO()
    images = [Image.new("RGB", (4, 4), (60 * i, 0, 0)) for i in range(frames)]
    images[0].save(buf, "GIF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def test_frames_are_counted_and_the_first_is_used():
    assert pp.load_image_frames(gif(3))[1] == 3
    assert pp.load_image_frames(Image.open(io.BytesIO(gif(2))))[1] == 2
    assert pp.prepare(gif(3), 8, 8)[2] == 3
    rgb = np.zeros((2, 2, 3), np.uint8)
    assert pp.load_image_frames(rgb) == (rgb, 1)
    assert pp.frame_count(Image.new("RGB", (1, 1))) == 1


def jpeg(width, height, orientation=None, colour=(200, 30, 30)):
    buf = io.BytesIO()
    image = Image.new("RGB", (width, height), colour)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


@pytest.mark.parametrize(("orientation", "hw"), [(None, (200, 400)), (1, (200, 400)), (3, (200, 400)),
                                                 (5, (400, 200)), (6, (400, 200)), (7, (400, 200)),
                                                 (8, (400, 200))])
def test_exif_orientation_swaps_height_and_width_for_5_to_8(orientation, hw):
    data = jpeg(400, 200, orientation)
    assert pp.oriented_size(Image.open(io.BytesIO(data))) == hw
    assert pp.load_image(data).shape == (*hw, 3)
    canvas, box, _ = pp.prepare(data, 64, 64)
    assert (box.original_height, box.original_width) == hw
    assert canvas.shape == (64, 64, 3)


@pytest.mark.parametrize("orientation", [None, 6])
def test_a_large_jpeg_decoded_at_reduced_scale_gives_the_full_decodes_canvas(orientation):
    data = jpeg(1600, 800, orientation)
    canvas, box, _ = pp.prepare(data, 64, 64)
    want, want_box = pp.letterbox(pp.load_image(data), 64, 64)
    assert box == want_box
    assert np.abs(canvas.astype(int) - want.astype(int)).max() <= 3


def test_a_grey_jpeg_is_decoded_to_rgb_at_reduced_scale():
    buf = io.BytesIO()
    Image.new("L", (1600, 800), 90).save(buf, "JPEG")
    canvas, box, _ = pp.prepare(buf.getvalue(), 64, 64)
    assert canvas.shape == (64, 64, 3)
    assert np.abs(canvas[box.pad_top + 2, 32].astype(int) - 90).max() <= 2


def test_a_truncated_image_is_a_decode_error():
    data = png(64, 64)[:60]
    with pytest.raises(ClientError, match=r"^Cannot read image `<bytes>`: not a decodable image \(.+\)\.$"):
        pp.load_image(data)
    with pytest.raises(ClientError, match=r"^Cannot read image `<bytes>`: not a decodable image"):
        pp.prepare(data, 8, 8)


# --- reduced-scale JPEG decoding (module docstring: 1/2, 1/4 or 1/8, never below what the letterbox needs) ----------

def noisy_jpeg(width, height, orientation=None, mode="RGB"):
    rng = np.random.default_rng(width + height)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes(), quality=90)
    return buf.getvalue()


def decoded_at(data, scale, size):
    """The oracle: PIL's DCT-scaled decode at exactly 1/``scale`` of the stored size, oriented, resized to ``size``
    (width, height) with the same bilinear filter."""
    from PIL import ImageOps

    pil = Image.open(io.BytesIO(data))
    pil.draft("RGB" if pil.mode == "YCbCr" else None, (pil.size[0] // scale, pil.size[1] // scale))
    assert pil.size == (Image.open(io.BytesIO(data)).size[0] // scale, Image.open(io.BytesIO(data)).size[1] // scale)
    rgb = ImageOps.exif_transpose(pil).convert("RGB")
    return np.asarray(rgb.resize(size, Image.BILINEAR))


@pytest.mark.parametrize(("stored", "orientation", "model", "scale"), [
    ((1600, 800), None, (64, 64), 8),    # box 64x32: 1/8 (200x100) still covers it
    ((1600, 800), None, (256, 256), 4),  # box 256x128: 1/4 (400x200); 1/8 would be too small
    ((800, 1600), 6, (256, 256), 4),     # stored 800x1600, shown 1600x800: box 256x128, asked in the stored frame
    ((1600, 400), 8, (256, 256), 4),     # shown 400x1600: box 64x256 -> stored 256x64: 1/4 (400x100)
])
def test_a_large_jpeg_is_decoded_at_the_smallest_dct_scale_covering_its_box(stored, orientation, model, scale):
    data = noisy_jpeg(*stored, orientation)
    canvas, box, _ = pp.prepare(data, *model)
    want = decoded_at(data, scale, (box.resized_width, box.resized_height))
    got = canvas[box.pad_top:box.pad_top + box.resized_height, box.pad_left:box.pad_left + box.resized_width]
    np.testing.assert_array_equal(got, want)


def test_a_grey_jpeg_is_decoded_at_reduced_scale_too():
    data = noisy_jpeg(1600, 800, mode="L")
    canvas, box, _ = pp.prepare(data, 64, 64)
    want = decoded_at(data, 8, (box.resized_width, box.resized_height))
    np.testing.assert_array_equal(canvas[box.pad_top:box.pad_top + box.resized_height], want)


def test_a_callers_pil_image_is_decoded_at_full_scale():
    data = noisy_jpeg(1600, 800)
    canvas, box, _ = pp.prepare(Image.open(io.BytesIO(data)), 64, 64)
    want = decoded_at(data, 1, (box.resized_width, box.resized_height))
    np.testing.assert_array_equal(canvas[box.pad_top:box.pad_top + box.resized_height], want)


def test_32_bit_grey_boundaries_between_8_and_16_bit_readings():
    assert grey_of(Image.fromarray(np.array([[0, 256]], np.int32), "I")) == [0, 1]
    assert grey_of(Image.fromarray(np.array([[-5, 7, 255]], np.int32), "I")) == [0, 7, 255]


def test_float_grey_boundaries():
    assert grey_of(Image.fromarray(np.array([[0.0, 1.5]], np.float32), "F")) == [0, 2]
    assert grey_of(Image.fromarray(np.array([[0.0, 255.0]], np.float32), "F")) == [0, 255]


def test_a_broken_pil_image_is_named_as_such():
    data = png(64, 64)[:60]
    with pytest.raises(ClientError, match=r"^Cannot read image `<PIL image>`: not a decodable image"):
        pp.load_image(Image.open(io.BytesIO(data)))
    with pytest.raises(ClientError, match=r"^Cannot read image `<PIL image>`: not a decodable image"):
        pp.prepare(Image.open(io.BytesIO(data)), 8, 8)


def test_prepare_applies_the_pixel_budget():
    with pytest.raises(ClientError, match=r"is 10x12 \(120 pixels\), above the budget of 119 pixels"):
        pp.prepare(png(10, 12), 8, 8, max_pixels=119)
    with pytest.raises(ClientError, match=r"above the budget of 119 pixels"):
        pp.load_image(png(10, 12), max_pixels=119)


def test_negative_32_bit_grey_is_black_not_white():
    """Found by mutation testing: an unsigned cast before clipping wrapped -5 round to white."""
    assert grey_of(Image.fromarray(np.array([[-5, 300, 65535]], np.int32), "I")) == [0, 1, 255]
