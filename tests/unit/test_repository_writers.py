"""Several writers of one model repository (the chart's engine-build init containers of several pods share it):
each write is serialised by a lock, so one writer's clean-up of dead writers' leftovers never removes a live
writer's staging folder, and every write ends with one whole model in place."""

from __future__ import annotations

import threading

import pytest

import export.repository as repository
from export.config import ServingOptions
from export.errors import ExportError
from export.locks import file_lock
from export.spec import get_spec


def write(repo, onnx):
    return repository.write_model(get_spec("unet"), ServingOptions.for_target("local"), repo, onnx_path=onnx)


def test_a_second_writer_waits_instead_of_deleting_the_first_writers_staging(tmp_path, monkeypatch):
    repo = tmp_path / "model_repository"
    first, second = tmp_path / "first.onnx", tmp_path / "second.onnx"
    first.write_bytes(b"first " * 1000)
    second.write_bytes(b"second " * 1000)
    place = repository._place
    first_placed, second_done = threading.Event(), threading.Event()

    def slow_first_place(source, dest):
        place(source, dest)
        if source == first:  # hold the first writer mid-build while the second one starts
            first_placed.set()
            second_done.wait(timeout=1.5)

    monkeypatch.setattr(repository, "_place", slow_first_place)
    errors = []

    def run(onnx, done=None):
        try:
            write(repo, onnx)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            if done is not None:
                done.set()

    a = threading.Thread(target=run, args=(first,))
    a.start()
    assert first_placed.wait(timeout=30)
    b = threading.Thread(target=run, args=(second, second_done))
    b.start()
    a.join(timeout=60)
    b.join(timeout=60)
    assert not errors, f"a writer failed: {errors!r}"
    assert (repo / "unet" / "1" / "model.onnx").read_bytes() == second.read_bytes(), "the last writer's model"
    assert sorted(p.name for p in repo.iterdir()) == ["unet"]


def test_a_writer_that_cannot_get_the_lock_says_who_holds_it(tmp_path, monkeypatch):
    repo = tmp_path / "model_repository"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"m" * 100)
    write(repo, onnx)
    monkeypatch.setattr(repository, "WRITE_LOCK_TIMEOUT_S", 0.3)
    with file_lock(repository.write_lock_path(repo), 1, busy="test"):
        with pytest.raises(ExportError, match=r"^Waited 0 s for the lock .*\.lock: another export is writing into "
                                              r".*model_repository; try again when it has finished\.$"):
            write(repo, onnx)
    write(repo, onnx)  # released: writes again
