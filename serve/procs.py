"""The processes of one tritonserver run, read from /proc: its python-backend stubs (one per model instance, each
with its own /dev/shm region), its process group, and what is left of them after a crash.

A stub's command line is ``triton_python_backend_stub <repo>/<model>/<version>/model.py <shm region> <shm size>
<shm growth> <parent pid> ...`` (python_backend src/stub_launcher.cc, r24.10 = Triton 2.51; seen with `ps` here).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

STUB_NAME = "triton_python_backend_stub"
SHM_DIR = Path("/dev/shm")


@dataclass(frozen=True)
class Stub:
    pid: int
    model: str
    region: str  # the /dev/shm file name the stub shares with tritonserver


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of ``pid`` or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name in (...) may hold spaces
    return fields[0], int(fields[1]), int(fields[2])


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def stubs_of(server_pid: int) -> list[Stub]:
    """The live python-backend stubs whose parent is ``server_pid``."""
    found = []
    for pid in _pids():
        st = _stat(pid)
        if st is None or st[1] != server_pid or st[0] in ("Z", "X"):
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) < 3 or not argv[0].decode(errors="replace").endswith(STUB_NAME):
            continue
        model_py = Path(argv[1].decode(errors="replace"))
        found.append(Stub(pid, model_py.parent.parent.name, argv[2].decode(errors="replace")))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (tritonserver and its stubs, also once orphaned)."""
    return [pid for pid in _pids() if (st := _stat(pid)) is not None and st[2] == pgid and st[0] not in ("Z", "X")]


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of the group. Each pid is killed by itself (not killpg), so a recycled group id never
    takes an unrelated process along."""
    for pid in group_members(pgid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_regions(names: set[str]) -> None:
    """Unlink the /dev/shm regions ``names`` that still exist (their owners are dead)."""
    for name in names:
        if name and "/" not in name:
            (SHM_DIR / name).unlink(missing_ok=True)
