"""One process per run folder: a second is refused naming the holder; a killed holder blocks nobody."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from doughflow import runlock

HOLD = """
import sys, time
from doughflow import runlock
runlock.acquire(sys.argv[1], owner="flow-run-1")
print("held", flush=True)
time.sleep(600)
"""


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(runlock.RunInUseError, match=f"pid {holder.pid} on .* since .*flow run flow-run-1"):
            runlock.acquire(tmp_path / "run")
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up of any kind: the kernel drops the lock
        holder.wait(timeout=30)
    runlock.acquire(tmp_path / "run", owner="retry")
    try:
        assert runlock.holds(tmp_path / "run")
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == os.getpid()
    finally:
        runlock.release(tmp_path / "run")
    assert not runlock.holds(tmp_path / "run")


def test_the_lock_is_reentrant_in_one_process_and_released_with_its_flow_run(tmp_path):
    runlock.acquire(tmp_path / "a", owner="flow-1")
    runlock.acquire(tmp_path / "a", owner="flow-1")  # the CLI, then the flow's first step
    runlock.acquire(tmp_path / "b", owner="flow-2")
    try:
        assert runlock.release_owned("flow-1") == [str((tmp_path / "a" / ".lock").resolve())]
        assert not runlock.holds(tmp_path / "a") and runlock.holds(tmp_path / "b")
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from doughflow import runlock; runlock.acquire(sys.argv[1]); print('ok')",
                str(tmp_path / "a"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert child.stdout.strip() == "ok", child.stderr
    finally:
        runlock.release_owned("flow-2")
    assert not runlock.holds(tmp_path / "b")
