"""Grouped non-maximum suppression: many independent NMS problems in one op, exported as ONNX ``NonMaxSuppression``.

``grouped_nms(boxes [G, N, 4], scores [G, 1, N])`` runs greedy NMS separately in every group ``g`` (a group is one
image and one FPN level in the RPN, one image and one class in the detection head) and returns ONNX's
``selected_indices [K, 3]`` rows ``(g, 0, box)``. Groups are ONNX NonMaxSuppression's own batch dimension, so no box
is ever shifted: every coordinate stays inside the image, which FP16 holds exactly enough (the coordinate-offset
trick moved class 90's boxes by 9x10^5, beyond FP16's 65,504). Entries a caller wants ignored get score
``MASKED_SCORE`` and fall under ``SCORE_FLOOR``.

Why groups on the batch axis and not classes on the class axis: TensorRT's NMS layer (``INMSLayer``, which
onnx-tensorrt maps ONNX NonMaxSuppression to) sorts the boxes of one batch item "without regard to class" and only
considers the top ``TopK box limit`` of them (at most 5000, 2000 on SM 5.3/6.2) -- 90 classes x 1000 proposals
would be cut to 5000 candidates. With one group per batch item there are at most 1000 per item.
Sources: onnx-tensorrt 10.1-GA ``onnxOpImporters.cpp`` ``DEFINE_BUILTIN_OP_IMPORTER(NonMaxSuppression)`` (3D boxes
and scores, ``addNMS``, scores transposed to [batch, boxes, classes]); TensorRT 10.7 operator docs ``NMS.html``
(TopK box limit, "selected if their score is above a given threshold"); onnx-tensorrt ``docs/operators.md`` at
10.0-GA/10.1-GA (NonMaxSuppression: FP32, FP16, no restrictions listed, as in the static check's
``export/tensorrt/data/onnx_ops_trt10.1.json``; TensorRT 8.5's stricter rule that ``max_output_boxes_per_class`` and
``iou_threshold`` are initializers holds here too).

The eager implementation (torchvision's ``nms`` per group) is what PyTorch runs and what the parity check compares
the ONNX graph against; ``onnx_translation_table()`` gives ``torch.onnx.export`` the ONNX lowering.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MASKED_SCORE = -1.0  # a score no real entry has (probabilities are >= 0)
SCORE_FLOOR = -0.5  # NonMaxSuppression's score_threshold: entries at MASKED_SCORE never take part
OP_NAME = "segserve::grouped_nms"


@lru_cache(maxsize=1)
def _op():
    """Register the custom op once (torch is imported on first use, not at module import)."""
    import torch
    from torchvision.ops import nms

    # An explicit schema: this module's annotations are strings (``from __future__ import annotations``).
    schema = "(Tensor boxes, Tensor scores, int max_per_group, float iou_threshold, float score_threshold) -> Tensor"

    @torch.library.custom_op(OP_NAME, mutates_args=(), schema=schema)
    def grouped_nms(boxes, scores, max_per_group, iou_threshold, score_threshold):
        rows = []
        for g in range(boxes.shape[0]):
            candidates = torch.nonzero(scores[g, 0] > score_threshold).flatten()
            keep = candidates[nms(boxes[g, candidates], scores[g, 0, candidates], iou_threshold)][:max_per_group]
            rows.append(torch.stack([torch.full_like(keep, g), torch.zeros_like(keep), keep], dim=1))
        if not rows:
            return torch.zeros((0, 3), dtype=torch.int64, device=boxes.device)
        return torch.cat(rows).to(torch.int64)

    @grouped_nms.register_fake
    def _(boxes, scores, max_per_group, iou_threshold, score_threshold):
        selected = torch.library.get_ctx().new_dynamic_size()
        return boxes.new_empty((selected, 3), dtype=torch.int64)

    return grouped_nms


def _to_onnx(boxes, scores, max_per_group: int, iou_threshold: float, score_threshold: float):
    """ONNX lowering: one NonMaxSuppression node, its three scalars as constants (TensorRT wants initializers)."""
    import numpy as np
    from onnxscript import ir
    from onnxscript import opset18 as op

    def constant(value, dtype):
        return op.Constant(value=ir.tensor(np.array(value, dtype=dtype)))

    return op.NonMaxSuppression(boxes, scores, constant(max_per_group, np.int64),
                                constant(iou_threshold, np.float32), constant(score_threshold, np.float32))


def grouped_nms(boxes: "torch.Tensor", scores: "torch.Tensor", iou_threshold: float,
                max_per_group: int) -> "torch.Tensor":
    """Keep mask ``[G, N]`` (bool) of greedy NMS run independently in each group.

    ``boxes [G, N, 4]`` (x1, y1, x2, y2), ``scores [G, N]``; entries with ``MASKED_SCORE`` never take part and are
    never kept. At most ``max_per_group`` boxes are kept per group, the highest scoring first.
    """
    import torch

    groups, n = scores.shape
    selected = _op()(boxes, scores[:, None, :], max_per_group, iou_threshold, SCORE_FLOOR)
    keep = torch.zeros((groups, n), dtype=torch.float32, device=scores.device)
    # Float, not bool, so the scatter stays in TensorRT's supported ScatterND types.
    keep = keep.index_put((selected[:, 0], selected[:, 2]), torch.ones_like(selected[:, 0], dtype=torch.float32))
    return keep > 0.5


def onnx_translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``."""
    _op()
    import torch

    return {torch.ops.segserve.grouped_nms.default: _to_onnx}
