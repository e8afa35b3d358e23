"""`python -m export import`: tiny hand-built ONNX networks (no torch) wrapped in the segserve contract, checked
against expectations written independently of the wrapper, and every misfit rejected with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.__main__ import main  # noqa: E402
from support import WITHOUT_TENSORRT, no_findings  # noqa: E402


def save(tmp_path, nodes, inputs, outputs, initializers=(), opset=17, name="net.onnx"):
    graph = helper.make_graph(nodes, "net", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def channel_scores_net(tmp_path, *, opset=17, batch=1, spatial=(64, 64), name="scores.onnx"):
    """Class c = input channel c (identity 1x1 conv): the largest colour channel decides the class."""
    eye = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "w")
    h, w = spatial
    return save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["scores"])],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, h, w])],
                [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 3, h, w])], [eye], opset=opset,
                name=name)


def brightness_map_net(tmp_path, *, opset=17, name="fg.onnx"):
    """One foreground logit per 2x2 block: the mean of the normalised channels (so > 0 where the pixel is bright),
    at half the input size (exercises the wrapper's resize). Input height/width dynamic."""
    axes = [1]
    if opset >= 18:
        mean = [helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1)]
        inits = [numpy_helper.from_array(np.array(axes, np.int64), "axes")]
    else:
        mean = [helper.make_node("ReduceMean", ["x"], ["m"], axes=axes, keepdims=1)]
        inits = []
    nodes = mean + [helper.make_node("AveragePool", ["m"], ["logit"], kernel_shape=[2, 2], strides=[2, 2])]
    return save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["n", 1, "h2", "w2"])], inits, opset=opset,
                name=name)


def run_import(args, capsys):
    code = main(["import", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def served(repo, name, images):
    from export.parity import ort_session

    session = ort_session(repo / name / "1" / "model.onnx")
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"IMAGE": images})))


def colour_patches(height=64, width=64):
    """Left third red, middle green, right blue (RGB), in a batch of 2 (second mirrored)."""
    image = np.zeros((height, width, 3), np.uint8)
    for c, cols in enumerate(np.array_split(np.arange(width), 3)):
        image[:, cols, c] = 200
    return np.stack([image, image[:, ::-1]])


@pytest.mark.parametrize("opset", [11, 13, 17, 18])
def test_class_scores_become_an_argmax_mask_with_rgb_channel_order(tmp_path, capsys, opset):
    net = channel_scores_net(tmp_path, opset=opset)
    classes = tmp_path / "classes.txt"
    classes.write_text("red\ngreen\nblue\n")
    repo = tmp_path / "repo"
    code, out, err = run_import([net, "--name", "colours", "--classes", classes, "--probs", "--max-batch-size", 4,
                                 "--mean", 0, 0, 0, "--std", 1, 1, 1, "--output", repo, "--work-dir", tmp_path / "w"],
                                capsys)
    assert code == 0, err
    assert "pixel agreement 100.000000%" in out and no_findings() in out
    images = colour_patches()
    got = served(repo, "colours", images)
    thirds = np.array_split(np.arange(64), 3)
    for c, cols in enumerate(thirds):  # left third red -> class 0, middle green -> 1, right blue -> 2
        assert (got["MASK"][0][:, cols] == c).all()
    np.testing.assert_array_equal(got["MASK"][1], got["MASK"][0][:, ::-1])
    assert got["MASK"].dtype == np.uint8 and got["PROBS"].dtype == np.float16
    # softmax over (200/255, 0, 0): the winning class has e^0.784 / (e^0.784 + 2)
    want = np.exp(200 / 255) / (np.exp(200 / 255) + 2)
    assert abs(float(got["PROBS"][0, 0, 0, 0]) - want) < 1e-3
    assert (repo / "colours" / "labels.txt").read_text().split() == ["red", "green", "blue"]


@pytest.mark.parametrize("opset", [11, 18])
def test_foreground_logits_are_resized_thresholded_and_min_maxed(tmp_path, capsys, opset):
    net = brightness_map_net(tmp_path, opset=opset)
    repo = tmp_path / "repo"
    # mean 0.5, std 1: a logit > 0 (sigmoid > 0.5) exactly where the channel mean exceeds 127.5
    code, out, err = run_import([net, "--name", "bright", "--size", 64, 96, "--mean", .5, .5, .5, "--std", 1, 1, 1,
                                 "--probs", "--output", repo, "--work-dir", tmp_path / "w"], capsys)
    assert code == 0, err
    assert no_findings() in out  # the wrapper's Resize/Reduce*/Squeeze forms parse
    image = np.full((64, 96, 3), 40, np.uint8)
    image[:, :48] = 220
    got = served(repo, "bright", image[None])
    assert got["MASK"].shape == (1, 64, 96) and got["PROBS"].shape == (1, 2, 64, 96)
    assert (got["MASK"][0, :, :46] == 1).all() and (got["MASK"][0, :, 50:] == 0).all()
    np.testing.assert_allclose(got["PROBS"][0].astype(np.float32).sum(axis=0), 1.0, atol=1e-3)
    # min-max stretches a dim-everywhere image (all logits < 0) so its brighter half still counts as foreground
    code, _, err = run_import([net, "--name", "stretched", "--size", 64, 96, "--mean", .5, .5, .5, "--std", 1, 1, 1,
                               "--minmax", "--output", repo, "--work-dir", tmp_path / "w"], capsys)
    assert code == 0, err
    dim = np.full((64, 96, 3), 10, np.uint8)
    dim[:, :48] = 100
    assert (served(repo, "bright", dim[None])["MASK"] == 0).all()
    stretched = served(repo, "stretched", dim[None])["MASK"][0]
    assert (stretched[:, :46] == 1).all() and (stretched[:, 50:] == 0).all()


def test_spec_travels_in_the_metadata_and_every_target_gets_a_repository(tmp_path, capsys):
    from export.config import parse_config
    from export.spec import ModelSpec

    net = channel_scores_net(tmp_path)
    for target in ("local", "onnxruntime"):
        repo = tmp_path / target
        code, _, err = run_import([net, "--name", "colours", "--target", target, "--output", repo,
                                   "--work-dir", tmp_path / "w"], capsys)
        assert code == 0, err
        model = onnx.load(str(repo / "colours" / "1" / "model.onnx"))
        props = {p.key: p.value for p in model.metadata_props}
        spec = ModelSpec.from_json(props["segserve.spec"])
        assert (spec.name, spec.height, spec.width, spec.num_classes, spec.max_batch_size) == ("colours", 64, 64, 3, 8)
        assert "net.onnx" not in props["segserve.source"] and "scores.onnx sha256:" in props["segserve.source"]
        config = parse_config((repo / "colours" / "config.pbtxt").read_text())
        assert [i.name for i in config.input] == ["IMAGE"] and [o.name for o in config.output] == ["MASK"]
        assert config.max_batch_size == 8 and (config.backend == "python") == (target == "local")
        assert json.loads(config.parameters["segserve.class_names"].string_value) == ["__background__", "class_1",
                                                                                       "class_2"]


def test_an_fp16_import_is_gated_in_both_runs_and_a_gate_error_leaves_no_half_file(tmp_path, capsys, monkeypatch):
    import export.fp16_rounding
    from export.errors import ExportError

    net = channel_scores_net(tmp_path)
    args = [net, "--name", "colours", "--precision", "fp16", "--work-dir", tmp_path / "w"]
    code, out, err = run_import([*args, "--output", tmp_path / "repo"], capsys)
    assert code == 0, err
    assert "as is: pixel agreement 100.0" in out and "every FP16 tensor rounded: pixel agreement 100.0" in out

    def cannot_round(*_):
        raise ExportError("FP16 rounding emulation cannot type tensor `x`")

    monkeypatch.setattr(export.fp16_rounding, "run_rounded", cannot_round)
    code, _, err = run_import([*args, "--output", tmp_path / "repo2"], capsys)
    assert code == 1 and err.strip().endswith("cannot type tensor `x`") and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("*.fp16.onnx")) and not (tmp_path / "repo2" / "colours").exists()


def test_a_fixed_batch_of_one_is_freed_for_batching(tmp_path, capsys):
    net = channel_scores_net(tmp_path, batch=1)
    repo = tmp_path / "repo"
    code, _, err = run_import([net, "--name", "b", "--max-batch-size", 4, "--output", repo,
                               "--work-dir", tmp_path / "w"], capsys)
    assert code == 0, err
    assert served(repo, "b", np.concatenate([colour_patches()] * 2))["MASK"].shape == (4, 64, 64)



def test_a_float16_network_gets_float16_in_and_its_scores_as_float32(tmp_path, capsys):
    eye = numpy_helper.from_array(np.eye(3, dtype=np.float16).reshape(3, 3, 1, 1), "w")
    net = save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["scores"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["n", 3, 64, 64])],
               [helper.make_tensor_value_info("scores", TensorProto.FLOAT16, ["n", 3, 64, 64])], [eye])
    repo = tmp_path / "repo"
    code, _, err = run_import([net, "--name", "half", "--mean", 0, 0, 0, "--std", 1, 1, 1, "--output", repo,
                               "--work-dir", tmp_path / "w"], capsys)
    assert code == 0, err
    mask = served(repo, "half", colour_patches())["MASK"]
    assert (mask[0][:, :21] == 0).all() and (mask[0][:, 22:42] == 1).all() and (mask[0][:, 43:] == 2).all()


def test_a_graph_that_hard_codes_batch_one_is_refused_for_batching_and_imports_at_batch_one(tmp_path, capsys):
    eye = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "w")
    shape = numpy_helper.from_array(np.array([1, 3, 64, 64], np.int64), "shape")
    net = save(tmp_path, [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Reshape", ["c", "shape"],
                                                                                        ["scores"])],
               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
               [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3, 64, 64])], [eye, shape])
    args = [net, "--name", "one", "--output", tmp_path / "repo", "--work-dir", tmp_path / "w"]
    code, _, err = run_import(args, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "fails in ONNX Runtime on a batch of 2 (does the network hard-code its batch size? try --max-batch-size 1)" \
        in err
    code, _, err = run_import([*args, "--max-batch-size", 1], capsys)
    assert code == 0, err

def test_a_tensorrt_finding_fails_an_import_for_tensorrt_but_only_warns_for_onnx_runtime(tmp_path, caplog):
    from export.config import ServingOptions
    from export.errors import ExportError
    from export.importer.pipeline import static_tensorrt_check
    from export.spec import get_spec

    path = save(tmp_path, [helper.make_node("Unique", ["x"], ["y"], name="dedupe")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    spec = get_spec("unet")
    assert "1 findings" in static_tensorrt_check(path, spec, ServingOptions.for_target("local"))
    assert "would not parse in TensorRT (operator table 11.1" in caplog.text
    with pytest.raises(ExportError, match=r"will not parse in TensorRT \(operator table 11\.1, the newest: the "
                       r"TensorRT of NGC 26\.07 \(nvcr\.io/nvidia/tritonserver:26\.07-py3\) is not verified\): "
                       r"unet: node `dedupe` \(Unique\)"):
        static_tensorrt_check(path, spec, ServingOptions.for_target("onnxruntime", trt_accelerator=True))


# -- files that do not fit: one line each, naming what was found and what is needed ----------------------------
def two_inputs(tmp_path):
    return save(tmp_path, [helper.make_node("Add", ["a", "b"], ["y"])],
                [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 3, 8, 8]),
                 helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 3, 8, 8])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])


def uint8_input(tmp_path):
    return save(tmp_path, [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
                [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 64, 64])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])])


def rank3_output(tmp_path):
    return save(tmp_path, [helper.make_node("ReduceMax", ["x"], ["y"], axes=[1], keepdims=0)],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 64])])


def class_id_output(tmp_path):
    return save(tmp_path, [helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=1)],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
                [helper.make_tensor_value_info("y", TensorProto.INT64, ["n", 1, "h", "w"])])


def nhwc_input(tmp_path):
    return save(tmp_path, [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 64, 3])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])])


@pytest.mark.parametrize("make, extra, message", [
    (two_inputs, [], r"has 2 inputs \(`a` FLOAT\[1, 3, 8, 8\], `b` FLOAT\[1, 3, 8, 8\]\); import needs exactly one "
                     r"float NCHW image input"),
    (uint8_input, [], r"input `x` UINT8\[1, 3, 64, 64\] is not float; import needs a float32 or float16 NCHW"),
    (rank3_output, [], r"output `y` FLOAT\[1, 64, 64\] has rank 3; import needs per-class scores \[N, C, H, W\] "
                       r"or one foreground map \[N, 1, H, W\]"),
    (class_id_output, [], r"output `y` is int64\[1, 1, 64, 64\]; import needs float scores"),
    (nhwc_input, [], r"input `x` FLOAT\[1, 64, 64, 3\] has 64 channels \(it looks NHWC\); import needs an RGB NCHW"),
    (brightness_map_net, [], r"input `x` FLOAT\['n', 3, 'h', 'w'\] has a dynamic height/width: pass the served "
                             r"input size with --size H \[W\]"),
    (channel_scores_net, ["--size", 128], r"--size 128 128 does not fit `scores.onnx`: its input .* is fixed at "
                                          r"64x64"),
    (channel_scores_net, ["--onnx-output", "nope"], r"has no output `nope`; its outputs: scores"),
    (channel_scores_net, ["--threshold", 0.3], r"returns 3 class scores \(ArgMax decides the mask\): --threshold "
                                               r"and --minmax apply to a one-channel foreground map only"),
    (channel_scores_net, ["--name", "bad name"], r"Bad model name `bad name`"),
    (channel_scores_net, ["--std", 0, 1, 1], r"Bad --std \[0\.0, 1\.0, 1\.0\]: every value must be > 0"),
])
def test_files_and_options_that_do_not_fit_get_one_clear_line(tmp_path, capsys, make, extra, message):
    import re

    net = make(tmp_path)
    code, out, err = run_import([net, *extra, "--output", tmp_path / "repo", "--work-dir", tmp_path / "w"], capsys)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert re.search(message, err), err
    assert not (tmp_path / "repo").exists()


def test_a_class_names_file_must_match_the_class_count(tmp_path, capsys):
    net = channel_scores_net(tmp_path)
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\n")
    code, _, err = run_import([net, "--classes", classes, "--output", tmp_path / "repo"], capsys)
    assert code == 1 and "2 class names given, but `scores.onnx` returns 3 class scores: give 3 names" in err
    code, _, err = run_import([net, "--classes", tmp_path / "missing.txt", "--output", tmp_path / "repo"], capsys)
    assert code == 1 and "Cannot read class names file" in err


def test_an_unreadable_file_is_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    code, _, err = run_import([junk], capsys)
    assert code == 1 and err.startswith("error: `") and "is not a readable ONNX file" in err
    code, _, err = run_import([tmp_path / "absent.onnx"], capsys)
    assert code == 1 and "absent.onnx` does not exist" in err


# -- the built-in u2netp: rembg's trained file through the same import path ------------------------------------
def require_u2netp_file() -> None:
    """A missing fetched file fails the test with the command that fetches it (never a skip, never a puzzle)."""
    from export.importer.builtin import IMPORTED, asset_path

    path, _ = asset_path(IMPORTED["u2netp"].asset, IMPORTED["u2netp"].member)
    if not path.is_file():
        pytest.fail(f"{path} missing: run `scripts/fetch-tools.sh u2netp` (make tools)")


def test_u2netp_is_exported_from_its_pinned_file_through_the_import_path(tmp_path, capsys):
    from export.spec import ModelSpec, get_spec

    require_u2netp_file()
    repo = tmp_path / "repo"
    code = main(["u2netp", "--output", str(repo), "--work-dir", str(tmp_path / "w"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "raw ONNX + numpy reference" in out and no_findings() in out
    model = onnx.load(str(repo / "u2netp" / "1" / "model.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert ModelSpec.from_json(props["segserve.spec"]) == get_spec("u2netp")
    assert "u2netp.onnx sha256:309c8469" in props["segserve.source"] and "output:1959" in props["segserve.source"]
    assert [o.name for o in model.graph.output] == ["MASK"]  # the six side outputs are pruned away
    assert (repo / "u2netp" / "labels.txt").read_text().split() == ["background", "foreground"]


def test_u2netp_in_fp16_passes_the_gate_in_both_cpu_runs(tmp_path, capsys):
    """A trained network through the FP16 gate: the mixed-precision graph vs the FP32 graph, run as it is and with
    every FP16 tensor rounded (measured: 99.73% and 99.66% of the pixels agree)."""
    import re

    from export.metadata import precision_from_onnx

    require_u2netp_file()
    repo = tmp_path / "repo"
    code = main(["u2netp", "--precision", "fp16", "--output", str(repo), "--work-dir", str(tmp_path / "w"),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    runs = re.findall(r"(as is|every FP16 tensor rounded): pixel agreement ([\d.]+)%", out)
    assert [label for label, _ in runs] == ["as is", "every FP16 tensor rounded"]
    assert all(99.5 <= float(value) < 100 for _, value in runs), runs  # < 100: FP16 really differs from FP32
    assert runs[0][1] != runs[1][1], "the rounded run computes something else than ONNX Runtime's FP32 kernels"
    assert precision_from_onnx(repo / "u2netp" / "1" / "model.onnx") == "fp16"


def test_u2netp_refuses_a_checkpoint_and_says_how_to_fetch_a_missing_file(tmp_path, capsys, monkeypatch):
    checkpoint = tmp_path / "x.pt"
    checkpoint.write_bytes(b"a real file: the refusal is about the model, not a missing path")
    code = main(["u2netp", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "repo")])
    assert code == 1 and "`u2netp` is imported from a trained ONNX file: --checkpoint does not apply" in \
        capsys.readouterr().err
    monkeypatch.setenv("SEGSERVE_TOOLS", str(tmp_path / "empty"))
    code = main(["u2netp", "--output", str(tmp_path / "repo")])
    err = capsys.readouterr().err
    assert code == 1 and "u2netp.onnx is not fetched yet: run `scripts/fetch-tools.sh u2netp` (or `make tools`)" in err
    bad = tmp_path / "empty" / "models" / "u2netp.onnx"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the pinned file")
    code = main(["u2netp", "--output", str(tmp_path / "repo")])
    assert code == 1 and "pinned 309c8469" in capsys.readouterr().err


@WITHOUT_TENSORRT  # tests/gpu covers engine builds
def test_the_tensorrt_target_without_tensorrt_is_one_line_before_any_work(tmp_path, capsys):
    net = channel_scores_net(tmp_path)
    code, out, err = run_import([net, "--target", "tensorrt", "--output", tmp_path / "repo",
                                 "--work-dir", tmp_path / "w"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "`tensorrt` is needed for this step" in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "repo").exists()


def test_scale_one_with_pixel_unit_mean_std_is_the_same_normalisation(tmp_path, capsys):
    from export.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec

    net = brightness_map_net(tmp_path)
    pixel_mean = [m * 255 for m in IMAGENET_MEAN]
    pixel_std = [s * 255 for s in IMAGENET_STD]
    repo = tmp_path / "repo"
    for name, extra in (("default", []), ("pixels", ["--scale", 1, "--mean", *pixel_mean, "--std", *pixel_std])):
        code, _, err = run_import([net, "--name", name, "--size", 64, *extra, "--output", repo,
                                   "--work-dir", tmp_path / "w"], capsys)
        assert code == 0, err
    specs = [ModelSpec.from_json({p.key: p.value for p in onnx.load(str(repo / n / "1" / "model.onnx")).metadata_props}
                                 ["segserve.spec"]) for n in ("default", "pixels")]
    np.testing.assert_allclose(specs[0].mean, specs[1].mean, rtol=1e-9)
    np.testing.assert_allclose(specs[0].std, specs[1].std, rtol=1e-9)
    images = colour_patches()
    np.testing.assert_array_equal(served(repo, "default", images)["MASK"], served(repo, "pixels", images)["MASK"])


def test_an_imported_model_builds_and_checks_for_the_release_asked(tmp_path, monkeypatch):
    """`python -m export u2netp --target tensorrt --release 24.10` (and `import ... --release`): the engine is built
    for that release and the static check uses its TensorRT's table, not the default release's. The build step is
    a stand-in (no TensorRT here); everything around it is real."""
    import export.tensorrt.build as build
    from export.config import ServingOptions
    from export.layout import served_sidecar_path
    from export.pipeline import export_model
    from export.spec import get_spec
    from support import H100 as gpu

    require_u2netp_file()
    real_build, releases_seen = build.build_engine, []

    def build_without_tensorrt(onnx_path, *, spec, options, cache_dir, **kwargs):
        releases_seen.append(options.release)
        return real_build(onnx_path, spec=spec, options=options, cache_dir=cache_dir, tensorrt_version="10.5.0",
                          gpu=gpu, builder=lambda *_: b"plan", **kwargs)

    monkeypatch.setattr(build, "build_engine", build_without_tensorrt)
    result = export_model(get_spec("u2netp"), ServingOptions.for_target("tensorrt"), tmp_path / "repo",
                          work_dir=tmp_path / "w", parity=False, progress=False, precision="fp32", release="24.10",
                          target_gpu=gpu)
    assert releases_seen == ["24.10"]
    assert json.loads(served_sidecar_path(result.model_dir).read_text())["release"] == "24.10"
    assert "operator table 10.1 for TensorRT 10.5.0 of NGC 24.10" in result.parity


def test_import_checks_its_release_and_folders_before_any_work(tmp_path, capsys):
    net = channel_scores_net(tmp_path)
    code, _, err = run_import([net, "--target", "tensorrt", "--release", "99.99", "--output", tmp_path / "repo",
                               "--work-dir", tmp_path / "w"], capsys)
    assert code == 1 and err.startswith("error: Unknown NGC release `99.99`. Known: 24.10, ")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run_import([net, "--output", blocker / "repo", "--work-dir", tmp_path / "w"], capsys)
    assert code == 1 and f"Bad --output `{blocker / 'repo'}`: `{blocker}` is a file" in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "repo").exists()
