"""Compact instance results, per-image NUM_DETECTIONS cuts of batched outputs, ordered concurrent map, CLI output
names (issue #10 items 2, 3, 6; issue #8 item 5)."""

import threading
import time

import numpy as np
import pytest

from client.__main__ import main, output_paths
from client.api import ordered_map
from client.errors import ClientError
from client.postprocess import paste_masks, paste_masks_compact
from client.preprocess import fit
from client.results import DetectionResult, SegmentationResult, detections_to_original


def random_detections(n: int, height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w, h = rng.uniform(4, width * 0.6, n), rng.uniform(4, height * 0.6, n)
    x0, y0 = rng.uniform(-10, width - 4, n), rng.uniform(-10, height - 4, n)
    boxes = np.stack([x0, y0, np.minimum(x0 + w, width + 5), np.minimum(y0 + h, height + 5)], 1).astype(np.float32)
    return rng.random((n, 28, 28)).astype(np.float32), boxes


def test_compact_masks_paste_to_the_same_full_frames():
    masks, boxes = random_detections(40, 270, 480)
    full = paste_masks(masks, boxes, 270, 480)
    crops, origins = paste_masks_compact(masks, boxes, 270, 480)
    result = DetectionResult(boxes, np.ones(40, np.float32), np.ones(40, np.int32), tuple(crops), origins,
                             (270, 480), ("bg", "thing"), 0.0)
    np.testing.assert_array_equal(result.full_masks(), full)
    np.testing.assert_array_equal(result.masks, full)
    for i in (0, 17, 39, -1):
        np.testing.assert_array_equal(result.full_mask(i), full[i])
    with pytest.raises(IndexError, match="out of range"):
        result.full_mask(40)
    for crop, (x, y), frame in zip(crops, origins, full):
        assert frame[:, :x].sum() == 0 and frame[:y].sum() == 0  # nothing outside the crop
        assert frame[y:y + crop.shape[0], x:x + crop.shape[1]].sum() == frame.sum()


def test_100_instances_at_1080p_take_a_few_mb_not_207():
    masks, boxes = random_detections(100, 1080, 1920)
    boxes[:, 2:] = np.minimum(boxes[:, :2] + 300, boxes[:, 2:])  # instances up to 300 px, as in a street photo
    crops, origins = paste_masks_compact(masks, boxes, 1080, 1920)
    result = DetectionResult(boxes, np.ones(100, np.float32), np.ones(100, np.int32), tuple(crops), origins,
                             (1080, 1920), (), 0.0)
    assert result.nbytes < 12e6 < 100 * 1080 * 1920


def padded_outputs(counts, d=5, seed=0):
    rng = np.random.default_rng(seed)
    b = len(counts)
    xy = rng.uniform(0, 100, (b, d, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 50, (b, d, 2))], -1).astype(np.float32)
    return {"BOXES": boxes, "SCORES": rng.random((b, d)).astype(np.float32),
            "LABELS": rng.integers(1, 5, (b, d)).astype(np.int64),
            "MASKS": rng.random((b, d, 28, 28)).astype(np.float16),
            "NUM_DETECTIONS": np.array(counts, np.int32).reshape(b, 1)}


def test_batched_outputs_are_cut_per_image_by_num_detections():
    outputs = padded_outputs([2, 5, 0])
    box = fit(150, 150, 150, 150)
    results = [detections_to_original(outputs, box, ("a",), index=i) for i in range(3)]
    assert [len(r) for r in results] == [2, 5, 0]
    for i, r in enumerate(results):
        np.testing.assert_allclose(r.boxes, np.clip(outputs["BOXES"][i][:len(r)], 0, 150))
        np.testing.assert_array_equal(r.scores, outputs["SCORES"][i][:len(r)])
    assert results[2].full_masks().shape == (0, 150, 150)


def test_a_num_detections_beyond_the_padding_is_an_error():
    with pytest.raises(ClientError, match=r"Bad NUM_DETECTIONS 9 for batch item 0: outputs hold 5 detections"):
        detections_to_original(padded_outputs([9]), fit(10, 10, 10, 10), ())


def test_classes_count_pixels_with_bincount():
    mask = np.array([[0, 0, 3], [3, 3, 3]], np.uint8)
    result = SegmentationResult(mask, ("bg", "a", "b", "c"), 0.0)
    assert result.classes == [(3, "c", 4 / 6), (0, "bg", 2 / 6)]


# -- many in flight -----------------------------------------------------------------------------------------
def test_ordered_map_keeps_order_and_runs_concurrently():
    active, peak, lock = [0], [0], threading.Lock()

    def work(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02 * ((i * 7) % 5))
        with lock:
            active[0] -= 1
        return i * i

    assert list(ordered_map(work, range(20), 4)) == [i * i for i in range(20)]
    assert peak[0] == 4


def test_ordered_map_reads_ahead_a_bounded_window():
    pulled = []

    def items():
        for i in range(100):
            pulled.append(i)
            yield i

    it = ordered_map(lambda i: i, items(), 3)
    assert next(it) == 0
    assert len(pulled) <= 7
    it.close()


def test_ordered_map_returns_client_errors_in_place_and_raises_bugs():
    def work(i):
        if i == 2:
            raise ClientError("bad image 2")
        return i

    out = list(ordered_map(work, range(5), 2, return_exceptions=True))
    assert out[:2] == [0, 1] and isinstance(out[2], ClientError) and out[3:] == [3, 4]
    with pytest.raises(ClientError, match="bad image 2"):
        list(ordered_map(work, range(5), 2))
    with pytest.raises(ClientError, match=r"Bad concurrency 0"):
        list(ordered_map(work, range(5), 0))


# -- CLI ----------------------------------------------------------------------------------------------------
def test_output_names_never_collide(tmp_path):
    from pathlib import Path

    paths = [Path("a.jpg"), Path("a.png"), Path("x/b.jpg"), Path("y/b.jpg"), Path("c.jpg")]
    out = output_paths(paths, tmp_path, "m")
    assert [p.name for p in out] == ["a.jpg.m.png", "a.png.m.png", "b.jpg.m.png", "b.jpg-2.m.png", "c.m.png"]
    assert len(set(out)) == len(out)


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "overlay.png"
    target.write_bytes(b"x")
    assert main(["segment", "a.jpg", "--out", str(target), "--url", "127.0.0.1:1", "--timeout", "1"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --out `{target}` is a file: give a folder for the overlay PNGs.\n"


@pytest.mark.parametrize("argv, message", [
    (["--header", "no-colon"], "bad header 'no-colon'"),
    (["--timeout", "0"], "'0' must be > 0"),
    (["--concurrency", "-1"], "'-1' must be > 0"),
])
def test_bad_cli_options_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(["segment", "a.jpg", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(1080, 1920), (7, 1000), (333, 97), (2, 3)])
def test_class_counts_from_the_crop_equal_counting_the_full_mask(shape):
    from client.postprocess import unletterbox_counts, unletterbox_mask

    box = fit(*shape, 130, 130)
    model = np.random.default_rng(3).integers(0, 21, (130, 130)).astype(np.uint8)
    full = unletterbox_mask(model, box)
    np.testing.assert_array_equal(unletterbox_counts(model, box), np.bincount(full.ravel()))
    result = SegmentationResult(full, tuple("abcdefghijklmnopqrstu"), 0.0, 1, unletterbox_counts(model, box))
    assert result.classes == SegmentationResult(full, result.class_names, 0.0).classes
