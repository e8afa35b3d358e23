"""An exclusive lock between processes and threads, for files several writers share: the engine cache (one build
per engine) and a model repository (one writer at a time).

``fcntl.flock`` on a lock file: the kernel releases it when the holder dies, so a killed writer never leaves a stale
lock (the file itself stays, empty). On NFS, Linux emulates flock with a whole-file ``fcntl`` lock, which needs the
file open for writing (flock(2), NOTES): hence a lock *file*, opened read-write, never a lock on a folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import time
from pathlib import Path
from typing import Iterator

from export.errors import ExportError

POLL_S = 0.2


@contextlib.contextmanager
def file_lock(path: Path, timeout_s: float, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing), waiting at most ``timeout_s`` seconds; after that an
    ExportError names the lock and ``busy`` (who holds it and what to do)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a+b") as handle:
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise ExportError(f"Waited {timeout_s:.0f} s for the lock {path}: {busy}") from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
