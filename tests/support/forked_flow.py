"""Runs ``flows.train`` in forked children of one process that imported it once.

The fault suite kills a flow in a stage of every kind, and runs two flows at once; a fresh
``python -m flows.train`` per run spends most of its time importing torch, Prefect and the pipeline,
and each stage imports its own heavy libraries when it first runs (DeepSpeed and torch's compiler for
training, the ONNX exporter, Dask, scikit-learn, matplotlib: about 2 s here), again in
every child. Here the imports happen once, and each line on stdin (JSON: argv, env, log, and
optionally out, a file for the run's stdout) forks a child that runs the flow CLI in its own session.
The child is the flow process: kill -9 of its process group is what the suite does. Its pid is the
reply. Children are reaped by the kernel, so their exit status is not kept: a finished run is known
by the summary it printed last.
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


def preload() -> None:
    """What the stages import when they first run, imported before any fork. None of it starts a thread
    (the process has as many threads after as before), so the children fork from a quiet process."""
    import contextlib
    import importlib

    from doughflow.reporting.plots import pyplot
    from doughflow.training.deepspeed_import import import_deepspeed

    # stdout carries the replies: what the imports print (DeepSpeed logs its accelerator there) goes to the log
    with contextlib.redirect_stdout(sys.stderr):
        import_deepspeed()
        pyplot()
        for module in (
            "torch._dynamo",
            "torch.export",
            "torch.onnx._internal.exporter._core",
            "onnxscript",
            "onnxruntime",
            "distributed",
            "sklearn.cluster",
        ):
            importlib.import_module(module)


def child(request: dict) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the flow waits on its own subprocesses
    os.setsid()
    os.environ.update(request["env"])
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 2)
    out = request.get("out") or os.devnull  # where the run's summary (its stdout) goes
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
    try:
        run_flow_cli(train, request["argv"])
    except BaseException:  # noqa: BLE001 - the log says what went wrong; the test sees the exit
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()  # os._exit skips the interpreter's flush
    os._exit(0)


def main() -> None:
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        print(pid, flush=True)


if __name__ == "__main__":
    main()
