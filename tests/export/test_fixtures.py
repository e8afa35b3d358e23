"""The test checkpoints are not degenerate: their answers depend on the image and spread like a trained model's.

Every comparison in the suite (ONNX vs eager, served vs eager, HTTP vs gRPC, batched vs single) is only as strong
as the outputs it compares. A model that answers one class everywhere, or scores every detection 1.0, agrees with
any bug for free; these tests fail if a fixture regresses to that.
"""

import numpy as np
import pytest

from export.models import MODELS
from support import fixture_statistics, photo

import torch  # noqa: E402,F401  (required: a missing torch fails, never skips)

SEMANTIC = sorted(n for n in MODELS if MODELS[n].spec.task == "semantic")


@pytest.mark.parametrize("name", SEMANTIC)
def test_semantic_fixture_spreads_over_many_classes_and_follows_the_image(exported, name):
    from export.samples import synthetic_image

    item = exported[name]
    h, w = item.spec.height, item.spec.width
    on_photo = fixture_statistics(item.spec, item.module, photo(h, w))
    on_scene = fixture_statistics(item.spec, item.module, synthetic_image(h, w, seed=11))
    assert on_photo["classes"] >= 8, on_photo["classes"]
    assert on_scene["classes"] >= 8, on_scene["classes"]
    assert on_photo["largest_share"] < 0.75
    # A different image gives a different mask (not one class map whatever the input).
    assert np.mean(on_photo["mask"] != on_scene["mask"]) > 0.3


def test_maskrcnn_fixture_scores_spread_without_ties(exported):
    from export.samples import synthetic_image

    item = exported["maskrcnn"]
    h, w = item.spec.height, item.spec.width
    stats = [fixture_statistics(item.spec, item.module, image)
             for image in (photo(h, w), synthetic_image(h, w, seed=11))]
    for s in stats:
        assert s["detections"] >= 20, s["detections"]
        assert 0.05 < s["min_score"] and s["max_score"] < 0.95, (s["min_score"], s["max_score"])
        assert s["max_score"] - s["min_score"] > 0.3  # spread, not a plateau
        assert s["ties"] <= 2, s["ties"]  # equal scores (within 1e-7): a cut through them is arbitrary
        assert s["labels"] >= 3
    # The scores follow the image.
    assert not np.array_equal(stats[0]["scores"][:10], stats[1]["scores"][:10])
