"""Every registered model, exported small from a test-made random checkpoint, agrees with eager PyTorch (one
parametrised test: a new model in the registry gets this coverage for free)."""

import numpy as np
import pytest

from export.models import MODELS

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


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
        assert agreement.matched > 0, "compare some detections, not none"


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

    spec = get_spec("deeplabv3_mobilenet").with_options(size=96, probs=True, max_batch_size=2)
    torch.manual_seed(0)
    module = build_served_module(spec)
    path = export_onnx(module, spec, tmp_path / "probs.onnx")
    images = example_input(spec, 2).numpy()
    out = run_onnxruntime(path, spec, images)
    assert out["PROBS"].dtype == np.float16 and out["PROBS"].shape == (2, 21, 96, 96)
    np.testing.assert_allclose(out["PROBS"].astype(np.float32).sum(axis=1), 1.0, atol=2e-2)
    assert np.mean(out["PROBS"].astype(np.float32).argmax(axis=1) == out["MASK"]) > 0.99
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
