"""Agreement between two runs of one model (pure numpy): eager vs ONNX Runtime, served vs eager, FP16 vs FP32.

Semantic models compare class-id masks pixel by pixel. Detections are matched by IoU, never by index: near-tied
scores reorder at the top-D cut (or at the score threshold), so a detection whose score ties the other side's cut may
be missing there; any other miss fails, and most detections must pair up. A batch is as good as its worst item.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


# Boxes overlapping more than this may suppress each other in NMS (torchvision's RoI-head NMS uses 0.5).
NMS_OVERLAP = 0.5


@dataclass(frozen=True)
class Thresholds:
    pixel_agreement: float = 0.999
    match_iou: float = 0.99
    box_error_px: float = 0.5
    mask_agreement: float = 0.999
    # Matched detections / the longer list: most detections must pair up, not merely some.
    matched_fraction: float = 0.95
    # A detection missing on one side is excused only if its score is within this of the other side's cut (the
    # D-th score of a full list, or the score threshold): a real tie at the cut, decided by rounding. ONNX Runtime
    # (in-process or in Triton) vs PyTorch eager differ by up to a few 1e-4 in score (measured on the test
    # checkpoints: tests/integration), so 1e-3.
    tie_tolerance: float = 1e-3
    # Misses that no tie explains, as a fraction of the longer list. Mask R-CNN cuts inside the graph too (the RPN's
    # top-N proposals of near-equal objectness), where one swapped proposal changes one final detection: measured 1
    # of 100 for ONNX Runtime in Triton vs eager on the test checkpoint. More than this fails.
    untied_fraction: float = 0.02


# The export parity check and served-vs-eager tests (same FP32 graph); TensorRT FP16 vs ONNX Runtime FP32 uses the
# looser gate.
PARITY = Thresholds()
FP16_GATE = Thresholds(pixel_agreement=0.995, match_iou=0.95, box_error_px=1.0, mask_agreement=0.99,
                       matched_fraction=0.9, tie_tolerance=1e-2, untied_fraction=0.05)


@dataclass(frozen=True)
class Agreement:
    """What was measured and whether it passed; ``summary`` is the one line users see. For a batch, the worst item
    (``item``) is reported."""

    passed: bool
    summary: str
    pixel_agreement: float | None = None
    reference_count: int = 0
    candidate_count: int = 0
    matched: int = 0
    unmatched_untied: int = 0
    max_box_error_px: float = 0.0
    mask_agreement: float = 1.0
    item: int = 0

    @property
    def matched_fraction(self) -> float:
        longer = max(self.reference_count, self.candidate_count)
        return self.matched / longer if longer else 1.0


def compare_masks(reference: np.ndarray, candidate: np.ndarray, limits: Thresholds = PARITY) -> Agreement:
    """Class-id masks of equal shape ([H, W] or a batch [B, H, W]): fraction of equal pixels of the worst item."""
    if reference.shape != candidate.shape:
        return Agreement(False, f"mask shapes differ: {reference.shape} vs {candidate.shape}")
    equal = reference == candidate
    per_item = equal.reshape(len(equal), -1).mean(axis=1) if equal.ndim == 3 else np.array([equal.mean()])
    item = int(np.argmin(per_item))
    agreement = float(per_item[item])
    ok = agreement >= limits.pixel_agreement
    where = f" (batch item {item} of {len(per_item)})" if equal.ndim == 3 and len(per_item) > 1 else ""
    return Agreement(ok, f"pixel agreement {agreement:.6%}{where} (need >= {limits.pixel_agreement:.2%})",
                     pixel_agreement=agreement, item=item)


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


def _match(iou: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching, best IoU first, pairs above ``min_iou`` only."""
    pairs: list[tuple[int, int]] = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    n_cand = iou.shape[1]
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), max(n_cand, 1))
        if iou[i, j] <= min_iou:
            break
        if i not in used_r and j not in used_c:
            pairs.append((i, j))
            used_r.add(i)
            used_c.add(j)
    return pairs


def _cut(scores: np.ndarray, max_detections: int, score_threshold: float) -> float:
    """The score below which a detection is not in this list: the D-th score of a full list, else the threshold."""
    if len(scores) >= max_detections and len(scores):
        return float(scores.min())
    return score_threshold


def compare_detections(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *, max_detections: int,
                       limits: Thresholds = PARITY, score_threshold: float = 0.0) -> Agreement:
    """Detections of one image, each a dict of ``boxes [n,4]``, ``scores [n]``, ``labels [n]``, ``masks [n,r,r]``
    (already cut to their real count). A detection without a partner (same label, IoU > ``match_iou``) fails the
    comparison unless its score ties the other side's cut within ``tie_tolerance``, or it and an unmatched
    overlapping same-class detection on the other side tie in score (an NMS tie)."""
    rb, cb = reference["boxes"], candidate["boxes"]
    n_ref, n_cand = len(rb), len(cb)
    raw_iou = box_iou(rb, cb) if n_ref and n_cand else np.zeros((n_ref, n_cand))
    iou = raw_iou.copy()
    iou[reference["labels"][:, None] != candidate["labels"][None, :]] = 0.0
    pairs = _match(iou, limits.match_iou)

    used_r, used_c = {i for i, _ in pairs}, {j for _, j in pairs}
    # An NMS tie: two overlapping same-class boxes scored within the tolerance of each other; rounding decides which
    # one NMS keeps, so each side holds one of them. Such a pair is excused on both sides.
    rs, cs = reference["scores"], candidate["scores"]
    for i in range(n_ref):
        for j in range(n_cand):
            if (i not in used_r and j not in used_c and reference["labels"][i] == candidate["labels"][j]
                    and raw_iou[i, j] > NMS_OVERLAP and abs(float(rs[i]) - float(cs[j])) <= limits.tie_tolerance):
                used_r.add(i)
                used_c.add(j)

    def untied(scores: np.ndarray, used: set[int], other_cut: float) -> int:
        return sum(1 for k in range(len(scores)) if k not in used and scores[k] > other_cut + limits.tie_tolerance)

    ref_cut = _cut(rs, max_detections, score_threshold)
    cand_cut = _cut(cs, max_detections, score_threshold)
    missing = untied(rs, used_r, cand_cut) + untied(cs, used_c, ref_cut)
    box_err = max((float(np.abs(rb[i] - cb[j]).max()) for i, j in pairs), default=0.0)
    if pairs:
        rm = np.stack([reference["masks"][i] for i, _ in pairs]) >= 0.5
        cm = np.stack([candidate["masks"][j] for _, j in pairs]) >= 0.5
        mask_agree = float(np.mean(rm == cm))
    else:
        mask_agree = 1.0
    longer = max(n_ref, n_cand)
    fraction = len(pairs) / longer if longer else 1.0
    untied = missing / longer if longer else 0.0
    ok = (untied <= limits.untied_fraction and fraction >= limits.matched_fraction and box_err <= limits.box_error_px
          and mask_agree >= limits.mask_agreement)
    summary = (f"{len(pairs)} of {n_ref}/{n_cand} detections matched (IoU > {limits.match_iou}; {fraction:.1%}, need "
               f">= {limits.matched_fraction:.0%}), {missing} unmatched not tied at a cut (<= {limits.untied_fraction:.0%}), max box error "
               f"{box_err:.3f} px (<= {limits.box_error_px}), binarised mask agreement {mask_agree:.4%} "
               f"(>= {limits.mask_agreement:.1%})")
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


def _badness(result: Agreement) -> tuple:
    """Sort key: failed before passed, then fewer matches, more unexplained misses, worse masks and boxes."""
    return (result.passed, result.matched_fraction, -result.unmatched_untied, result.mask_agreement,
            -result.max_box_error_px)


def compare_outputs(task: str, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], *,
                    max_detections: int = 0, limits: Thresholds = PARITY, score_threshold: float = 0.0) -> Agreement:
    """Compare two output dicts (Triton names) over every batch item; the worst item decides and is reported."""
    if task == "semantic":
        return compare_masks(np.asarray(reference["MASK"]), np.asarray(candidate["MASK"]), limits)
    batch = len(reference["BOXES"])
    if len(candidate["BOXES"]) != batch:
        return Agreement(False, f"batch sizes differ: {batch} vs {len(candidate['BOXES'])}")
    results = [compare_detections(detections_from_outputs(reference, b), detections_from_outputs(candidate, b),
                                  max_detections=max_detections, limits=limits, score_threshold=score_threshold)
               for b in range(batch)]
    item = min(range(batch), key=lambda b: _badness(results[b]))
    worst = results[item]
    if batch > 1:
        worst = replace(worst, item=item, summary=f"batch item {item} of {batch}: {worst.summary}")
    return replace(worst, item=item)
