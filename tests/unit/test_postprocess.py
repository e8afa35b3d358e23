import numpy as np

from client.postprocess import paste_masks


def test_paste_matches_torchvision_paste_masks_in_image():
    import torch
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    rng = np.random.default_rng(0)
    n, h, w = 12, 97, 143
    masks = rng.random((n, 28, 28)).astype(np.float32)
    # Boxes inside the image, as the model clips them (torchvision's own paste fails on boxes far outside).
    x0, y0 = rng.uniform(0, w - 5, n), rng.uniform(0, h - 5, n)
    x1, y1 = np.minimum(x0 + rng.uniform(2, 80, n), w - 1), np.minimum(y0 + rng.uniform(2, 60, n), h - 1)
    boxes = np.stack([x0, y0, x1, y1], 1).astype(np.float32)
    ours = paste_masks(masks, boxes, h, w)
    ref = paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (h, w))[:, 0].numpy() > 0.5
    assert ours.shape == ref.shape == (n, h, w)
    assert np.mean(ours == ref) >= 0.9999


def test_paste_of_no_detections_is_empty():
    assert paste_masks(np.zeros((0, 28, 28), np.float32), np.zeros((0, 4), np.float32), 10, 20).shape == (0, 10, 20)


def test_a_full_mask_fills_its_box_and_nothing_else():
    out = paste_masks(np.ones((1, 28, 28), np.float32), np.array([[10, 20, 40, 30]], np.float32), 50, 60)
    ys, xs = np.nonzero(out[0])
    assert ys.min() >= 19 and ys.max() <= 31 and xs.min() >= 9 and xs.max() <= 41
    assert out[0, 25, 25] and not out[0, 5, 5]
