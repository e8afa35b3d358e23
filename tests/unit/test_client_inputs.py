"""Client pre-processing: bad inputs give one-line ClientErrors, odd images decode right, the fast JPEG path keeps
the letterbox geometry (issue #10 items 1 and 6)."""

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from client.errors import ClientError
from client.postprocess import _nearest_index, unletterbox_mask
from client.preprocess import fit, letterbox, load_image, load_image_frames, prepare


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` (8-bit RGB) and holds one tiny compressed row: opening it reads
    the header only, decoding it would need width x height x 3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def jpeg(rgb: np.ndarray, orientation: int | None = None, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, exif=exif)
    return buffer.getvalue()


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth shapes plus grain: enough structure that a wrong resize or orientation shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     ((x // 40 + y // 40) % 2) * 200], axis=-1).astype(np.float32)
    return (base + rng.normal(0, 3, base.shape)).clip(0, 255).astype(np.uint8)


# -- pixel budget (a decompression bomb is refused from its header) -------------------------------------------
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size, named", [((50000, 50000), "2500000000 pixels"), ((12000, 12000), "12000x12000")])
def test_a_huge_declared_image_is_refused_before_decoding(size, named):
    data = png_header(*size)
    started = time.perf_counter()
    budget = "budget of 89,478,485 pixels"
    with pytest.raises(ClientError, match=rf"{named}.*{budget}|{budget}.*{named}"):
        load_image(data)
    with pytest.raises(ClientError, match=r"budget"):
        prepare(data, 64, 64)
    assert time.perf_counter() - started < 2.0


def test_the_pixel_budget_is_a_parameter():
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, format="PNG")
    assert load_image(buffer.getvalue(), max_pixels=1200).shape == (30, 40, 3)
    with pytest.raises(ClientError, match=r"40x30 \(1,200 pixels\), above the budget of 1,199 pixels"):
        load_image(buffer.getvalue(), max_pixels=1199)


# -- odd images ---------------------------------------------------------------------------------------------
def test_16_bit_grey_png_is_scaled_not_clipped_to_white():
    ramp = (np.arange(256 * 64, dtype=np.uint32).reshape(64, 256) * 4).astype(np.uint16)  # 0 .. 65532
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")
    rgb = load_image(buffer.getvalue())
    np.testing.assert_array_equal(rgb[..., 0], (ramp >> 8).astype(np.uint8))
    assert np.mean(rgb == 255) < 0.01
    canvas, box, _ = prepare(buffer.getvalue(), 64, 256)
    assert abs(int(canvas[box.pad_top:box.pad_top + box.resized_height].mean()) - 127) <= 2


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_animations_and_multi_page_files_report_their_frame_count(fmt):
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:])
    rgb, count = load_image_frames(buffer.getvalue())
    assert count == 3 and rgb.shape == (10, 20, 3)
    assert rgb[5, 10, 0] > 200 and rgb[5, 10, 1] < 50  # the first frame
    assert prepare(buffer.getvalue(), 32, 32)[2] == 3


@pytest.mark.parametrize("bad, message", [
    (None, r"Bad image of type NoneType: expected a path, bytes, a PIL image or a uint8 \[H, W, 3\] RGB array"),
    (3, r"Bad image of type int"),
    (3.5, r"Bad image of type float"),
    (np.zeros((0, 5, 3), np.uint8), r"Bad image array uint8\[0, 5, 3\]: it has no pixels"),
    (np.zeros((5, 0, 3), np.uint8), r"it has no pixels"),
    (np.zeros((4, 4), np.float32), r"Bad image array float32\[4, 4\]: expected uint8 \[H, W, 3\] RGB"),
    (np.zeros((4, 4, 4), np.uint8), r"expected uint8 \[H, W, 3\] RGB"),
])
def test_bad_image_objects_are_one_line_client_errors(bad, message):
    for call in (lambda: load_image(bad), lambda: prepare(bad, 32, 32)):
        with pytest.raises(ClientError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    if isinstance(bad, np.ndarray):
        with pytest.raises(ClientError, match=message):
            letterbox(bad, 32, 32)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ClientError, match=r"it is a folder"):
        load_image(tmp_path)


# -- the fast JPEG path keeps the letterbox -------------------------------------------------------------------
@pytest.mark.parametrize("orientation", [None, 6, 3])
def test_reduced_scale_jpeg_decode_keeps_geometry_and_pixels(orientation):
    """prepare() decodes a large JPEG at 1/2..1/8 scale; its letterbox is the one of the full decode, pixels
    nearly equal (the same bilinear fit from a DCT-reduced source)."""
    data = jpeg(photo(1080, 1920), orientation)
    full = load_image(data)
    reference, ref_box = letterbox(full, 520, 520)
    canvas, box, frames = prepare(data, 520, 520)
    assert box == ref_box and frames == 1
    assert box == fit(full.shape[0], full.shape[1], 520, 520)
    diff = np.abs(canvas.astype(np.int16) - reference.astype(np.int16))
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 16


def test_small_images_are_not_drafted():
    data = jpeg(photo(100, 150))
    canvas, box, _ = prepare(data, 520, 520)
    np.testing.assert_array_equal(canvas, letterbox(load_image(data), 520, 520)[0])


# -- the fast un-letterbox is exact -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1080, 1920), (293, 520), (7, 1000), (1000, 7), (2, 3), (520, 520), (333, 97)])
def test_unletterbox_mask_equals_the_pixel_centre_reference(shape):
    rng = np.random.default_rng(1)
    box = fit(*shape, 520, 520)
    model = rng.integers(0, 21, (520, 520)).astype(np.uint8)
    crop = model[box.pad_top:box.pad_top + box.resized_height, box.pad_left:box.pad_left + box.resized_width]
    rows = _nearest_index(shape[0], box.resized_height)
    cols = _nearest_index(shape[1], box.resized_width)
    np.testing.assert_array_equal(unletterbox_mask(model, box), crop[rows[:, None], cols[None, :]])
