"""Issue #13 items 6, 8, 9: every export option is range-checked (zero included) and fails in the first second with
one line naming the bad value and the valid range; a bad checkpoint never gets PyTorch's weights_only=False advice."""

from __future__ import annotations

import pytest

from export.__main__ import _resolve_specs, export_parser, main


@pytest.mark.parametrize("argv, message", [
    (["unet", "--size", "0"], "Bad size 0 for `unet`: use a multiple of 32 in 64..2048."),
    (["unet", "--size", "100000"], "Bad size 100000 for `unet`: use a multiple of 32 in 64..2048."),
    (["unet", "--size", "100"], "Bad size 100 for `unet`: use a multiple of 32 in 64..2048."),
    (["unet", "--max-batch-size", "0"], "Bad max batch size 0: use 1..256."),
    (["maskrcnn", "--max-detections", "0"],
     "Bad max detections 0 for `maskrcnn`: an instance model takes 1..1000."),
    (["maskrcnn", "--score-threshold", "-0.5"],
     "Bad score threshold -0.5 for `maskrcnn`: an instance model takes 0 <= t < 1."),
    (["maskrcnn", "--score-threshold", "nan"],
     "Bad score threshold nan for `maskrcnn`: an instance model takes 0 <= t < 1."),
    (["unet", "--num-classes", "0"], "Bad class count 0: use 2..65535."),
    (["unet", "--instances", "0"], "Bad --instances 0: use 1..64."),
])
def test_an_out_of_range_option_is_one_line_with_the_valid_range(argv, message, capsys):
    assert main(argv + ["--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"


def test_zero_valued_options_are_applied_not_dropped():
    args = export_parser().parse_args(["maskrcnn", "--score-threshold", "0.0"])
    (spec,) = _resolve_specs(["maskrcnn"], args)
    assert spec.score_threshold == 0.0


@pytest.mark.parametrize("flag", ["--output", "--work-dir", "--cache-dir"])
def test_a_folder_option_that_is_a_file_fails_before_any_work(flag, tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    assert main(["unet", flag, str(blocker / "sub"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err == (f"error: Bad {flag} `{blocker / 'sub'}`: `{blocker}` is a file; name a folder (it is created if "
                   "missing).\n")


def test_a_missing_checkpoint_fails_before_any_work(tmp_path, capsys):
    assert main(["unet", "--checkpoint", str(tmp_path / "nope.pt")]) == 1
    assert capsys.readouterr().err.startswith(f"error: Checkpoint `{tmp_path / 'nope.pt'}` does not exist.")


def test_bad_checkpoints_never_advise_weights_only_false(tmp_path):
    torch = pytest.importorskip("torch")
    from export.errors import ExportError
    from export.models import load_checkpoint

    net = torch.nn.Linear(2, 2)
    (tmp_path / "garbage.pt").write_bytes(bytes(range(256)) * 4)
    torch.save(net, tmp_path / "module.pt")  # a whole pickled module, not a state dict
    expected = {
        "garbage.pt": r"not a file written by torch\.save \(UnpicklingError: .+\)\.$",
        "module.pt": r"it pickles Python objects \(`torch\.nn\.modules\.linear\.Linear`\), not only tensors\. Save "
                     r"the weights alone with `torch\.save\(model\.state_dict\(\), path\)` and pass that file\.$",
    }
    for name, pattern in expected.items():
        with pytest.raises(ExportError, match=rf"^Checkpoint `.*{name}` is not a readable torch state dict: "
                                              + pattern) as info:
            load_checkpoint(net, tmp_path / name)
        assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
