"""Files several writers share (the engine cache, a model repository, exported ONNX files): an exclusive lock
between processes and threads (one engine build, one repository writer at a time), and writes renamed into place.

``fcntl.flock`` on a lock file: the kernel releases it when the holder dies, so a killed writer never leaves a stale
lock (the file itself stays, empty). On NFS, Linux emulates flock with a whole-file ``fcntl`` lock, which needs the
file open for writing (flock(2), NOTES): hence a lock *file*, opened read-write, never a lock on a folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file beside ``path``, fsync it and rename it into place: a reader never
    sees half a file, and each write is a new file (inode), so a hard link to the old one keeps what it had."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
