"""Agreement between two runs of one model (pure numpy): eager vs ONNX Runtime, served vs eager, FP16 vs FP32.

Semantic models compare class-id masks pixel by pixel. Detections are matched by IoU, never by index: near-tied
scores reorder at the top-D cut, so a detection whose score ties the cut may be missing on one side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE_TOLERANCE = 1e-3  # scores this close to the cut score count as tied at the cut


@dataclass(frozen=True)
class Thresholds:
    pixel_agreement: float = 0.999
    match_iou: float = 0.99
    box_error_px: float = 0.5
    mask_agreement: float = 0.999


# The export parity check and served-vs-eager tests; TensorRT FP16 vs ONNX Runtime FP32 uses the looser gate.
PARITY = Thresholds()
FP16_GATE = Thresholds(pixel_agreement=0.995, match_iou=0.95, box_error_px=1.0, mask_agreement=0.99)


@dataclass(frozen=True)
class Agreement:
    """What was measured and whether it passed; ``summary`` is the one line users see."""

    passed: bool
    summary: str
    pixel_agreement: float | None = None
    reference_count: int = 0
    candidate_count: int = 0
    matched: int = 0
    unmatched_untied: int = 0
    max_box_error_px: float = 0.0
    mask_agreement: float = 1.0


def compare_masks(reference: np.ndarray, candidate: np.ndarray, limits: Thresholds = PARITY) -> Agreement:
    """Class-id masks of equal shape: fraction of equal pixels."""
    if reference.shape != candidate.shape:
        return Agreement(False, f"mask shapes differ: {reference.shape} vs {candidate.shape}")
    agreement = float(np.mean(reference == candidate))
    ok = agreement >= limits.pixel_agreement
    return Agreement(ok, f"pixel agreement {agreement:.6%} (need >= {limits.pixel_agreement:.2%})",
                     pixel_agreement=agreement)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``a`` [N, 4] and ``b`` [M, 4] in (x1, y1, x2, y2)."""
    a = a.astype(np.float64)[:, None, :]
    b = b.astype(np.float64)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-12)


def compare_detections(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *, max_detections: int,
                       limits: Thresholds = PARITY) -> Agreement:
    """Detections of one image, each a dict of ``boxes [n,4]``, ``scores [n]``, ``labels [n]``, ``masks [n,r,r]``
    (already cut to their real count)."""
    rb, cb = reference["boxes"], candidate["boxes"]
    n_ref, n_cand = len(rb), len(cb)
    iou = box_iou(rb, cb) if n_ref and n_cand else np.zeros((n_ref, n_cand))
    iou[reference["labels"][:, None] != candidate["labels"][None, :]] = 0.0
    # Greedy matching, best IoU first.
    pairs: list[tuple[int, int]] = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), max(n_cand, 1))
        if iou[i, j] <= limits.match_iou:
            break
        if i not in used_r and j not in used_c:
            pairs.append((i, j))
            used_r.add(i)
            used_c.add(j)

    def untied(scores: np.ndarray, used: set[int], count: int) -> int:
        full = count >= max_detections  # only a full list has a cut where ties may fall either side
        cut = float(scores.min()) if full and count else -np.inf
        return sum(1 for k in range(count) if k not in used and not (full and scores[k] <= cut + TIE_TOLERANCE))

    missing = untied(reference["scores"], used_r, n_ref) + untied(candidate["scores"], used_c, n_cand)
    box_err = max((float(np.abs(rb[i] - cb[j]).max()) for i, j in pairs), default=0.0)
    if pairs:
        rm = np.stack([reference["masks"][i] for i, _ in pairs]) >= 0.5
        cm = np.stack([candidate["masks"][j] for _, j in pairs]) >= 0.5
        mask_agree = float(np.mean(rm == cm))
    else:
        mask_agree = 1.0
    ok = missing == 0 and box_err <= limits.box_error_px and mask_agree >= limits.mask_agreement
    summary = (f"{len(pairs)} of {n_ref}/{n_cand} detections matched (IoU > {limits.match_iou}), {missing} untied "
               f"unmatched, max box error {box_err:.3f} px (<= {limits.box_error_px}), binarised mask agreement "
               f"{mask_agree:.4%} (>= {limits.mask_agreement:.1%})")
    return Agreement(ok, summary, reference_count=n_ref, candidate_count=n_cand, matched=len(pairs),
                     unmatched_untied=missing, max_box_error_px=box_err, mask_agreement=mask_agree)


def detections_from_outputs(outputs: dict[str, np.ndarray], index: int = 0) -> dict[str, np.ndarray]:
    """Cut the padded instance outputs (``BOXES``, ``SCORES``, ``LABELS``, ``MASKS``, ``NUM_DETECTIONS``) of batch
    item ``index`` to their real count."""
    n = int(np.asarray(outputs["NUM_DETECTIONS"])[index].reshape(-1)[0])
    return {
        "boxes": np.asarray(outputs["BOXES"][index][:n], dtype=np.float32),
        "scores": np.asarray(outputs["SCORES"][index][:n], dtype=np.float32),
        "labels": np.asarray(outputs["LABELS"][index][:n]),
        "masks": np.asarray(outputs["MASKS"][index][:n], dtype=np.float32),
    }


def compare_outputs(task: str, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *,
                    max_detections: int = 0, limits: Thresholds = PARITY) -> Agreement:
    """Compare two output dicts (Triton names) over every batch item; the worst item decides."""
    if task == "semantic":
        return compare_masks(np.asarray(reference["MASK"]), np.asarray(candidate["MASK"]), limits)
    batch = len(reference["BOXES"])
    results = [compare_detections(detections_from_outputs(reference, b), detections_from_outputs(candidate, b),
                                  max_detections=max_detections, limits=limits) for b in range(batch)]
    failed = [r for r in results if not r.passed]
    return failed[0] if failed else results[0]
