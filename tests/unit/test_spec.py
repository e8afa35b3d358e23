import pytest

from export.errors import ExportError
from export.models import MODELS
from export.spec import SPECS, get_spec


def test_every_builder_has_a_spec_and_back():
    from export.importer.builtin import IMPORTED  # built from a trained ONNX file, not a PyTorch builder

    assert not set(MODELS) & set(IMPORTED)
    assert set(MODELS) | set(IMPORTED) == set(SPECS) == {"unet", "deeplabv3", "deeplabv3_mobilenet", "maskrcnn",
                                                          "u2netp"}


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(ExportError, match=r"Unknown model `unett`\. Available: deeplabv3, deeplabv3_mobilenet, "
                                          r"maskrcnn, u2netp, unet\."):
        get_spec("unett")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_input_is_uint8_nhwc_at_the_model_size(name):
    spec = get_spec(name)
    assert spec.image.name == "IMAGE" and spec.image.dtype == "UINT8"
    assert spec.image.dims == (spec.height, spec.width, 3)


def test_semantic_outputs_are_a_uint8_mask_and_optional_fp16_probs():
    spec = get_spec("deeplabv3")
    assert [(t.name, t.dtype, t.dims) for t in spec.outputs] == [("MASK", "UINT8", (520, 520))]
    probs = spec.with_options(probs=True)
    assert probs.outputs[1].name == "PROBS" and probs.outputs[1].dtype == "FP16"
    assert probs.outputs[1].dims == (21, 520, 520)


def test_more_than_256_classes_need_an_int32_mask():
    assert get_spec("unet").with_options(num_classes=300).outputs[0].dtype == "INT32"
    assert get_spec("unet").with_options(num_classes=256).outputs[0].dtype == "UINT8"


def test_maskrcnn_outputs_are_fixed_size_and_padded():
    spec = get_spec("maskrcnn")
    assert {t.name: t.dims for t in spec.outputs} == {
        "BOXES": (100, 4), "SCORES": (100,), "LABELS": (100,), "MASKS": (100, 28, 28), "NUM_DETECTIONS": (1,)}
    assert spec.with_options(max_detections=10).outputs[0].dims == (10, 4)
    assert spec.max_batch_size == 8 and spec.num_classes == 91


def test_class_names_travel_with_the_spec():
    assert get_spec("deeplabv3").class_names[15] == "person"
    assert get_spec("maskrcnn").class_names[1] == "person"
    assert get_spec("unet").with_options(num_classes=3).class_names == ("__background__", "class_1", "class_2")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"size": 100}, r"Bad size 100 for `unet`: use a multiple of 32 in 64\.\.2048\."),
    ({"size": 32}, r"Bad size 32"),
    ({"num_classes": 1}, r"Bad class count 1: use 2\.\.65535\."),
    ({"max_detections": 5}, r"Bad max detections 5 for `unet`"),
    ({"max_batch_size": 0}, r"Bad max batch size 0: use 1\.\.256\."),
])
def test_bad_overrides_name_the_value_and_what_is_valid(kwargs, message):
    with pytest.raises(ExportError, match=message):
        get_spec("unet").with_options(**kwargs)


def test_fixed_class_lists_cannot_be_resized():
    with pytest.raises(ExportError, match=r"`deeplabv3` has a fixed class list \(21 classes\)"):
        get_spec("deeplabv3").with_options(num_classes=5)


def test_maskrcnn_is_served_batched_up_to_8_and_its_batch_can_be_narrowed():
    spec = get_spec("maskrcnn")
    assert (spec.max_batch_size, spec.preferred_batch_sizes) == (8, (4,))
    assert spec.with_options(max_batch_size=2).preferred_batch_sizes == (2,)
    assert spec.with_options(max_batch_size=1).preferred_batch_sizes == ()


def test_trt_profile_comes_from_the_batch_settings():
    assert get_spec("unet").batch_profile == (1, 8, 8)
    assert get_spec("unet").with_options(max_batch_size=2).batch_profile == (1, 2, 2)
    assert get_spec("maskrcnn").batch_profile == (1, 4, 8)


@pytest.mark.parametrize(("kwargs", "ok"), [
    ({"size": 64}, True), ({"size": 63}, False), ({"size": 96}, True), ({"size": 2048}, True), ({"size": 2080}, False),
    ({"size": (64, 96)}, True), ({"size": (96, 70)}, False),
    ({"num_classes": 2}, True), ({"num_classes": 65535}, True), ({"num_classes": 65536}, False),
    ({"max_batch_size": 1}, True), ({"max_batch_size": 256}, True), ({"max_batch_size": 257}, False),
])
def test_override_boundaries_for_unet(kwargs, ok):
    if ok:
        get_spec("unet").with_options(**kwargs)
    else:
        with pytest.raises(ExportError, match=r"^Bad "):
            get_spec("unet").with_options(**kwargs)


@pytest.mark.parametrize(("kwargs", "ok"), [
    ({"max_detections": 1}, True), ({"max_detections": 1000}, True), ({"max_detections": 0}, False),
    ({"max_detections": 1001}, False), ({"score_threshold": 0.0}, True), ({"score_threshold": 0.999}, True),
    ({"score_threshold": 1.0}, False), ({"score_threshold": -0.01}, False), ({"max_batch_size": 1}, True),
    ({"max_batch_size": 8}, True),
])
def test_override_boundaries_for_maskrcnn(kwargs, ok):
    if ok:
        spec = get_spec("maskrcnn").with_options(**kwargs)
        for key, value in kwargs.items():
            assert getattr(spec, key) == value
    else:
        with pytest.raises(ExportError, match=r"^Bad (max detections|score threshold) .* for `maskrcnn`: an instance "
                                              r"model takes (1\.\.1000|0 <= t < 1)\.$"):
            get_spec("maskrcnn").with_options(**kwargs)


def test_overrides_land_in_the_spec():
    spec = get_spec("unet").with_options(size=(64, 96), num_classes=3, probs=True, max_batch_size=2)
    assert (spec.height, spec.width, spec.num_classes, spec.with_probs, spec.max_batch_size) == (64, 96, 3, True, 2)
    assert get_spec("unet").with_options(num_classes=21).class_names == get_spec("unet").class_names
    assert get_spec("unet").with_options() == get_spec("unet")
    assert not get_spec("unet").with_options(probs=False).with_probs


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("unet", {"max_detections": 10}, r"^Bad max detections 10 for `unet`: an instance model takes 1\.\.1000\.$"),
    ("unet", {"score_threshold": 0.5}, r"^Bad score threshold 0\.5 for `unet`: an instance model takes 0 <= t < 1\.$"),
    ("maskrcnn", {"probs": True}, r"^--probs applies to semantic models; `maskrcnn` is instance\.$"),
    ("maskrcnn", {"num_classes": 5}, r"^`maskrcnn` has a fixed class list \(91 classes\); --num-classes applies to "
                                     r"unet only\.$"),
    ("unet", {"max_batch_size": 0}, r"^Bad max batch size 0: use 1\.\.256\.$"),
    ("unet", {"size": 100}, r"^Bad size 100 for `unet`: use a multiple of 32 in 64\.\.2048\.$"),
    ("unet", {"num_classes": 1}, r"^Bad class count 1: use 2\.\.65535\.$"),
])
def test_each_refusal_says_what_is_valid(name, kwargs, message):
    with pytest.raises(ExportError, match=message):
        get_spec(name).with_options(**kwargs)


def test_a_smaller_max_batch_keeps_the_preferred_sizes_that_fit():
    unet = get_spec("unet")  # preferred (4, 8), max 8
    assert unet.with_options(max_batch_size=4).preferred_batch_sizes == (4,)
    assert unet.with_options(max_batch_size=6).preferred_batch_sizes == (4,)
    assert unet.with_options(max_batch_size=3).preferred_batch_sizes == (3,)
    assert unet.with_options(max_batch_size=1).preferred_batch_sizes == ()
    assert unet.with_options(max_batch_size=16).preferred_batch_sizes == (4, 8)
    assert unet.with_options(max_batch_size=16).batch_profile == (1, 8, 16)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_json_round_trips_exactly(name):
    from export.spec import ModelSpec

    spec = get_spec(name).with_options(size=96)
    text = spec.to_json()
    assert ModelSpec.from_json(text) == spec
    assert text == spec.to_json() and '"height": 96' in text and text.index('"architecture"') < text.index('"height"')


def test_spec_json_with_unknown_fields_is_refused():
    import json

    from export.spec import ModelSpec

    raw = json.loads(get_spec("unet").to_json())
    raw["from_the_future"] = 1
    with pytest.raises(ExportError, match=r"^Unknown spec fields \['from_the_future'\]: the ONNX file comes from a "
                                          r"newer segserve\.$"):
        ModelSpec.from_json(json.dumps(raw))


def test_tensor_specs_describe_the_wire_bytes():
    spec = get_spec("deeplabv3")
    assert spec.image.nbytes == 520 * 520 * 3 and spec.outputs[0].nbytes == 520 * 520
    assert spec.input_names == ["IMAGE"] and spec.output_names == ["MASK"]
    assert get_spec("maskrcnn").output_names == ["BOXES", "SCORES", "LABELS", "MASKS", "NUM_DETECTIONS"]
