"""One process per run folder: an exclusive lock on ``<run>/.lock`` for as long as a flow uses the run.

Two processes resuming the same run id would train into the same checkpoints and rewrite the same
bundle. ``flock`` is the lock because the kernel drops it when its holder dies, even by kill -9: a
crashed run never blocks the retry that resumes it (the fault suite kills flows in a stage of every kind and
reruns the same id). The file holds who took it (pid, host, time, flow run) so that a refused second
process can say whom it is waiting for. Within one process the lock is re-entrant (the command line
takes it before the flow starts, the flow's first step takes it again), and a lock taken for a flow
run is released when that flow run ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".lock"


class RunInUseError(RuntimeError):
    """Another process holds the run folder; the message names it (pid, host, since when)."""


@dataclass
class _Held:
    fd: int
    pid: int  # the process that took it: a forked child does not hold its parent's lock
    owner: str | None  # the flow run it was taken for, released when that run ends


_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (it has not written its name yet)"
    run = f", flow run {info['flow_run']}" if info.get("flow_run") else ""
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}{run}"


def acquire(run_dir: str | Path, owner: str | None = None) -> Path:
    """Hold ``<run_dir>/.lock`` (created) or raise RunInUseError naming the holder. Taking a lock this
    process already holds is a no-op. Returns the lock file."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    key = str(path.resolve())
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held.pid == os.getpid():
            return path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInUseError(
                f"run folder {run_dir} is in use by {_holder(path)}; wait for it to finish, or use another run id"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "flow_run": owner,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD[key] = _Held(fd, os.getpid(), owner)
    return path


def release(run_dir: str | Path) -> None:
    """Give the run folder up (no-op when this process does not hold it)."""
    key = str((Path(run_dir) / LOCK_FILE).resolve())
    with _GUARD:
        held = _HELD.pop(key, None)
        if held is not None and held.pid == os.getpid():
            os.close(held.fd)  # closing the last descriptor drops the flock


def release_owned(owner: str) -> list[str]:
    """Release every lock taken for the flow run ``owner``; the lock files released."""
    with _GUARD:
        keys = [key for key, held in _HELD.items() if held.owner == owner and held.pid == os.getpid()]
    for key in keys:
        release(Path(key).parent)
    return keys


def holds(run_dir: str | Path) -> bool:
    held = _HELD.get(str((Path(run_dir) / LOCK_FILE).resolve()))
    return held is not None and held.pid == os.getpid()
