"""Every registered model, exported small from a test-made random checkpoint, agrees with eager PyTorch (one
parametrised test: a new model in the registry gets this coverage for free)."""

import numpy as np
import pytest

from export.models import MODELS

import onnxruntime  # noqa: E402,F401  (required by the test extra: a missing one fails, never skips)
import torch  # noqa: E402,F401


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_matches_eager_pytorch(exported, name):
    from export.onnx_export import example_input
    from export.parity import check_parity

    item = exported[name]
    # The pipeline's own parity check ran during export; check again on other images (batch > 1 where allowed).
    batch = min(3, item.spec.max_batch_size)
    images = example_input(item.spec, batch, seed=40).numpy()
    agreement = check_parity(item.module, item.spec, item.onnx_path, images)
    assert agreement.passed, agreement.summary
    if item.spec.task == "instance":
        assert agreement.matched >= 20 and agreement.matched_fraction >= 0.95, agreement.summary


# Semantic models; Mask R-CNN's batch independence: tests/export/test_maskrcnn_batch.py.
@pytest.mark.parametrize("name", sorted(n for n in MODELS if MODELS[n].spec.max_batch_size > 1
                                        and MODELS[n].spec.task == "semantic"))
def test_a_batch_answers_each_image_as_if_alone(exported, name):
    """Distinct images in one batch get the same answers as one at a time, in order (ONNX Runtime and eager)."""
    from export.parity import run_eager, run_onnxruntime
    from support import sample_images

    item = exported[name]
    images = sample_images(item.spec.height, item.spec.width, 4, seed=5)
    batched = run_onnxruntime(item.onnx_path, item.spec, images)["MASK"]
    eager = run_eager(item.module, item.spec, images)["MASK"]
    singles = [run_onnxruntime(item.onnx_path, item.spec, images[i:i + 1])["MASK"][0] for i in range(4)]
    assert len({m.tobytes() for m in singles}) == 4, "the images must give distinct masks"
    for i, single in enumerate(singles):
        assert np.mean(batched[i] == single) >= 0.999, i
        assert np.mean(eager[i] == single) >= 0.999, i


def test_parity_refuses_corrupted_maskrcnn_outputs(exported):
    """Real ONNX Runtime outputs, corrupted the ways a broken export would be: each must fail the comparison."""
    from export.compare import compare_outputs
    from export.parity import run_onnxruntime
    from support import photo

    item = exported["maskrcnn"]
    spec = item.spec
    good = run_onnxruntime(item.onnx_path, spec, photo(spec.height, spec.width)[None])
    n = int(good["NUM_DETECTIONS"][0, 0])
    assert n >= 20

    def check(candidate):
        return compare_outputs("instance", good, candidate, max_detections=spec.max_detections,
                               score_threshold=spec.score_threshold)

    assert check(good).passed
    corruptions = {}
    garbage = {k: v.copy() for k, v in good.items()}
    garbage["BOXES"][0, 1:n] = garbage["BOXES"][0, 1:n][::-1] + 7.0  # all but one box moved
    corruptions["boxes replaced"] = garbage
    shifted = {k: v.copy() for k, v in good.items()}
    shifted["BOXES"][0, :n] += 1.0
    corruptions["boxes shifted 1 px"] = shifted
    dropped = {k: v.copy() for k, v in good.items()}
    dropped["NUM_DETECTIONS"][0, 0] = n - 5  # the five lowest-scoring detections lost
    corruptions["detections dropped"] = dropped
    relabelled = {k: v.copy() for k, v in good.items()}
    relabelled["LABELS"][0, :n] = (relabelled["LABELS"][0, :n] % 90) + 1
    corruptions["labels changed"] = relabelled
    masks = {k: v.copy() for k, v in good.items()}
    masks["MASKS"][0, :n] = 1.0 - masks["MASKS"][0, :n]
    corruptions["masks inverted"] = masks
    for what, candidate in corruptions.items():
        assert not check(candidate).passed, what


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_has_the_spec_tensor_names_types_and_a_dynamic_batch(exported, name):
    import onnx

    item = exported[name]
    graph = onnx.load(str(item.onnx_path), load_external_data=False).graph
    types = {v.name: v.type.tensor_type for v in (*graph.input, *graph.output)}
    spec = item.spec
    assert [v.name for v in graph.input] == ["IMAGE"]
    assert [v.name for v in graph.output] == spec.output_names
    for t in (*spec.inputs, *spec.outputs):
        dims = types[t.name].shape.dim
        assert onnx.helper.tensor_dtype_to_np_dtype(types[t.name].elem_type) == t.np_dtype
        assert tuple(d.dim_value for d in dims[1:]) == t.dims
        assert (dims[0].dim_param == "batch") == (spec.max_batch_size > 0)  # Triton: dynamic dim 0 when batching


def test_semantic_export_accepts_every_batch_up_to_the_max(exported):
    from export.onnx_export import example_input
    from export.parity import run_onnxruntime

    item = exported["deeplabv3_mobilenet"]
    for batch in (1, item.spec.max_batch_size):
        out = run_onnxruntime(item.onnx_path, item.spec, example_input(item.spec, batch).numpy())
        assert out["MASK"].shape == (batch, item.spec.height, item.spec.width)


def test_maskrcnn_zero_detections_work_in_onnx_runtime(tmp_path):
    """Random weights score every class near 1/91: at threshold 0.5 nothing survives. The ONNX graph must return
    NUM_DETECTIONS 0 and zero-filled fixed-size outputs, and agree with eager."""
    import torch

    from export.models import build_served_module
    from export.onnx_export import example_input, export_onnx
    from export.parity import check_parity, run_onnxruntime
    from export.spec import get_spec

    spec = get_spec("maskrcnn").with_options(size=128, score_threshold=0.5, max_detections=10)
    torch.manual_seed(0)
    module = build_served_module(spec)
    path = export_onnx(module, spec, tmp_path / "maskrcnn.onnx")
    images = example_input(spec, 1).numpy()
    out = run_onnxruntime(path, spec, images)
    assert out["NUM_DETECTIONS"].tolist() == [[0]]
    assert out["BOXES"].shape == (1, 10, 4) and not out["BOXES"].any() and not out["MASKS"].any()
    assert check_parity(module, spec, path, images).passed


def test_maskrcnn_onnx_has_no_loop_or_if(exported):
    import onnx

    ops = {n.op_type for n in onnx.load(str(exported["maskrcnn"].onnx_path)).graph.node}
    assert not ops & {"Loop", "If", "Scan"}, ops


def test_parity_failure_stops_with_the_numbers(exported, tmp_path):
    """Export one model, then check it against a differently initialised module: the check must refuse."""
    import torch

    from export.errors import ExportError
    from export.models import build_served_module
    from export.onnx_export import example_input
    from export.parity import check_parity

    item = exported["deeplabv3_mobilenet"]
    torch.manual_seed(123)
    other = build_served_module(item.spec)
    with pytest.raises(ExportError, match=r"Parity check failed for `deeplabv3_mobilenet`.*pixel agreement \d"):
        check_parity(other, item.spec, item.onnx_path, example_input(item.spec, 1).numpy())


def test_checkpoints_load_strictly_and_explain_mismatches(tmp_path):
    import torch

    from export.errors import ExportError
    from export.models import build_network
    from export.spec import get_spec

    spec = get_spec("deeplabv3_mobilenet")
    net = build_network(spec)
    path = tmp_path / "good.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    loaded = build_network(spec, str(path))
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    state = net.state_dict()
    state.pop(next(iter(state)))
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ExportError, match=r"does not fit .*1 missing \(e\.g\. .*\); 1 unexpected \(e\.g\. extra"):
        build_network(spec, str(tmp_path / "bad.pt"))
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(ExportError, match=r"is not a readable torch state dict"):
        build_network(spec, str(tmp_path / "junk.pt"))
    with pytest.raises(ExportError, match=r"does not exist"):
        build_network(spec, str(tmp_path / "missing.pt"))


def test_repository_layout(exported):
    repo = exported["_repository"]
    for name in MODELS:
        assert sorted(p.name for p in (repo / name).iterdir()) == ["1", "config.pbtxt", "labels.txt"]
        assert sorted(p.name for p in (repo / name / "1").iterdir()) == ["model.onnx", "model.py"]
        labels = (repo / name / "labels.txt").read_text().splitlines()
        assert labels == list(exported[name].spec.class_names)


def test_probs_output_is_float16_softmax_and_matches_eager(tmp_path):
    import torch

    from export.models import build_served_module
    from export.onnx_export import example_input, export_onnx
    from export.parity import check_parity, run_onnxruntime
    from export.spec import get_spec

    from support import make_checkpoint

    spec = get_spec("deeplabv3_mobilenet").with_options(size=96, probs=True, max_batch_size=2)
    module = build_served_module(spec, str(make_checkpoint(spec, tmp_path / "probs.pt")))
    path = export_onnx(module, spec, tmp_path / "probs.onnx")
    images = example_input(spec, 2).numpy()
    out = run_onnxruntime(path, spec, images)
    assert out["PROBS"].dtype == np.float16 and out["PROBS"].shape == (2, 21, 96, 96)
    np.testing.assert_allclose(out["PROBS"].astype(np.float32).sum(axis=1), 1.0, atol=2e-2)
    assert np.mean(out["PROBS"].astype(np.float32).argmax(axis=1) == out["MASK"]) > 0.99
    assert all(len(np.unique(m)) >= 4 for m in out["MASK"]), "a one-class mask would make the argmax check free"
    assert check_parity(module, spec, path, images).passed


def test_re_exporting_into_the_work_dir_leaves_an_assembled_repository_alone(tmp_path):
    """The repository hard-links the ONNX file; a later export to the same work dir must not change what the
    repository serves (exports write a new file and move it into place)."""
    import onnx

    from export.config import ServingOptions
    from export.pipeline import export_model
    from export.spec import get_spec

    def input_size(path):
        dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        return dims[1].dim_value

    local = ServingOptions.for_target("local")
    first = export_model(get_spec("deeplabv3_mobilenet").with_options(size=64), local, tmp_path / "repo",
                         work_dir=tmp_path / "build", parity=False, progress=False)
    served = first.model_dir / "1" / "model.onnx"
    assert input_size(served) == 64
    export_model(get_spec("deeplabv3_mobilenet").with_options(size=96), local, tmp_path / "other",
                 work_dir=tmp_path / "build", parity=False, progress=False)
    assert input_size(tmp_path / "build" / "deeplabv3_mobilenet" / "model.onnx") == 96
    assert input_size(served) == 64
