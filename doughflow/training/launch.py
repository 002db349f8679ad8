"""Run a training job: in this process for world size 1, else under torchrun or the deepspeed launcher.

The launcher runs in its own session (process group) so that cancelling or failing the task kills
every rank with one ``os.killpg``; a Prefect cancellation otherwise leaves orphans (prefect#20979; Prefect fixed
its own subprocesses the same way in PR #21585). It
also gets PR_SET_PDEATHSIG, so it dies with us even when we are SIGKILLed. Each launch picks a free
MASTER_PORT (a fixed one collides with the last run's sockets) and sets DEEPSPEED_TIMEOUT so a stuck
peer fails the job instead of hanging it.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

import doughflow
from doughflow.config import LauncherConfig
from doughflow.training.job import JOB_FILE, TrainJob, TrainResult, load_result
from doughflow.training.loop import run_training
from doughflow.training.process import free_port

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(doughflow.__file__).resolve().parent.parent


class TrainingFailed(RuntimeError):
    """A rank raised an error (bad data, NaN loss, config): a retry would fail the same way."""


class TrainingCrashed(RuntimeError):
    """The training processes died without reporting an error (killed, OOM, lost node): worth a retry."""


def world_size(launcher: LauncherConfig) -> int:
    return launcher.num_processes * launcher.num_nodes


def launch_command(launcher: LauncherConfig, job_path: Path, port: int) -> list[str]:
    entry = ["-m", "doughflow.training.entry", str(job_path)]
    if world_size(launcher) == 1:
        return [sys.executable, *entry]
    kind = launcher.launcher
    if kind == "auto":
        kind = "deepspeed" if launcher.hostfile or launcher.num_nodes > 1 else "torchrun"
    if kind == "torchrun":
        if launcher.num_nodes > 1:
            raise ValueError(
                "multi-node runs need the deepspeed launcher and a hostfile "
                "(train.launcher.launcher=deepspeed, train.launcher.hostfile=...)"
            )
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={launcher.num_processes}",
            "--nnodes=1",
            f"--master_addr={launcher.master_addr}",
            f"--master_port={port}",
            *entry,
        ]
    command = [
        sys.executable,
        "-m",
        "deepspeed.launcher.runner",
        f"--num_gpus={launcher.num_processes}",
        f"--num_nodes={launcher.num_nodes}",
        f"--master_addr={launcher.master_addr}",
        f"--master_port={port}",
    ]
    if launcher.hostfile:
        command.append(f"--hostfile={launcher.hostfile}")
    elif launcher.num_nodes > 1:
        raise ValueError("train.launcher.num_nodes > 1 needs train.launcher.hostfile")
    return [*command, "--no_local_rank", "--module", "doughflow.training.entry", str(job_path)]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the task's process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def kill_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the whole group (launcher, ranks, their loader workers), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start(job: TrainJob, launcher: LauncherConfig) -> subprocess.Popen:
    """Write the job file and start the launcher in a new session; the caller waits or kills."""
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "errors").glob("rank*.json"):
        stale.unlink()
    job_path = out_dir / JOB_FILE
    job_path.write_text(job.to_json())
    port = launcher.master_port or free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["DEEPSPEED_TIMEOUT"] = str(launcher.timeout_minutes)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # the launcher sets these per rank
    command = launch_command(launcher, job_path, port)
    log.info("launching %d training process(es): %s", world_size(launcher), " ".join(command))
    return subprocess.Popen(
        command, env=env, cwd=str(PROJECT_ROOT), start_new_session=True, preexec_fn=_die_with_parent
    )


def failure(out_dir: Path, returncode: int) -> RuntimeError:
    reports = [json.loads(p.read_text()) for p in sorted((out_dir / "errors").glob("rank*.json"))]
    if reports:
        first = reports[0]
        return TrainingFailed(
            f"training rank {first['rank']} failed with {first['type']}: {first['message']}"
            + (f" ({len(reports)} ranks reported errors; see {out_dir / 'errors'})" if len(reports) > 1 else "")
        )
    how = f"signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
    return TrainingCrashed(
        f"training processes ended with {how} and no error report; a rerun resumes from "
        f"the latest checkpoint in {out_dir / 'checkpoints'}"
    )


def run_job(job: TrainJob, launcher: LauncherConfig) -> TrainResult:
    """Train in-process (world size 1) or under a launcher, and return rank 0's result."""
    if world_size(launcher) == 1 and not launcher.isolate:
        threads = torch.get_num_threads()
        try:  # training sets its own thread count (doughflow.training.process); the caller's comes back after
            result = run_training(job)
        finally:
            torch.set_num_threads(threads)
        assert result is not None
        return result
    process = start(job, launcher)
    try:
        returncode = process.wait()
    except BaseException:
        kill_group(process)
        raise
    finally:
        if process.poll() is None:
            kill_group(process)
    if returncode != 0:
        raise failure(Path(job.out_dir), returncode)
    return load_result(job.out_dir)
