"""Runs ``flows.train`` in forked children of one process that imported it once.

The fault suite kills a flow in a stage of every kind; a fresh ``python -m flows.train`` per kill spends most
of its time importing torch, Prefect and the pipeline. Here the imports happen once, and each line
on stdin (JSON: argv, env, log) forks a child that runs the flow CLI in its own session. The child
is the flow process: kill -9 of its process group is what the suite does. Its pid is the reply.
"""

from __future__ import annotations

import json
import os
import signal
import sys

# Every stage gets the hold hook; each child names the stage to hold in (doughflow/orchestration/stage_tasks.py).
os.environ.setdefault("DOUGHFLOW_FAULT_HOLD_STAGE", "")

from doughflow.cli.flow import run_flow_cli  # noqa: E402
from flows.train import train  # noqa: E402


def child(request: dict) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the flow waits on its own subprocesses
    os.setsid()
    os.environ.update(request["env"])
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    try:
        run_flow_cli(train, request["argv"])
    except BaseException:  # noqa: BLE001 - the log says what went wrong; the test sees the exit
        import traceback

        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
