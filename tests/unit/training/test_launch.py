"""Launching: 2 CPU processes under torchrun (gloo), failure reporting, launcher commands."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from doughflow.config import LauncherConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training.checkpoint import latest_tag
from doughflow.training.launch import TrainingCrashed, TrainingFailed, failure, launch_command, run_job, start
from tests.support.sample_data import pizza_columns
from doughflow.training.streaming import ShardRef
from doughflow.training.job import TrainJob
from tests.support.configs import tiny_train_config


def _two_process_job(shards, out_dir) -> TrainJob:
    cfg = tiny_train_config(epochs=2, checkpoint_every_steps=2, launcher={"num_processes": 2})
    return TrainJob(shards[:2], shards[2:], pizza_columns(), 5, cfg, Preprocessing(64), str(out_dir), "fp")


def test_two_cpu_processes_train_resume_after_sigkill_and_rank0_reports(tiny_shards, tmp_path):
    job = _two_process_job(tiny_shards, tmp_path / "whole")
    result = run_job(job, job.cfg.launcher)
    assert result.world_size == 2
    assert result.global_steps >= 4 and len(result.history["step_loss"]) == result.global_steps
    assert json.loads(Path(result.ds_config_path).read_text())["doughflow"]["global_batch_size"] == 32
    assert "val_exact_count_accuracy" in result.history["epoch"][0]
    assert torch.load(result.model_path, weights_only=True)  # rank 0 wrote the weights the task reads back
    assert not list((tmp_path / "whole" / "errors").glob("*.json"))

    # Kill the launcher and both ranks after the first checkpoint; the rerun must end where the whole run did.
    killed = _two_process_job(tiny_shards, tmp_path / "killed")
    process = start(killed, killed.cfg.launcher)
    deadline = time.time() + 120
    while latest_tag(tmp_path / "killed" / "checkpoints") is None and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not (tmp_path / "killed" / "result.json").exists(), "the run finished before it could be killed"
    resumed = run_job(killed, killed.cfg.launcher)
    assert 0 < resumed.resumed_from_step < result.global_steps
    assert resumed.weights_sha256 == result.weights_sha256


def test_rank_error_is_reported_not_hidden(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet" * 100)
    cfg = tiny_train_config(epochs=1, launcher={"isolate": True}, loader={"num_workers": 0})
    job = TrainJob([ShardRef(str(bad), 100)], [], pizza_columns(), 5, cfg, Preprocessing(64), str(tmp_path / "run"))
    with pytest.raises(TrainingFailed, match=r"rank 0 failed with CorruptShardError: .*bad.parquet"):
        run_job(job, cfg.launcher)


def test_crash_without_report_is_retryable(tmp_path):
    assert isinstance(failure(tmp_path, -9), TrainingCrashed)
    from tasks.train import retry_on_crash

    class _State:
        def __init__(self, error):
            self.error = error

        def result(self, raise_on_failure=False):
            return self.error

    assert retry_on_crash(None, None, _State(failure(tmp_path, -9)))
    assert not retry_on_crash(None, None, _State(TrainingFailed("bad shard")))


def test_launcher_commands(tmp_path):
    job = tmp_path / "job.json"
    single = launch_command(LauncherConfig(isolate=True), job, 1234)
    assert single == [sys.executable, "-m", "doughflow.training.entry", str(job)]
    torchrun = launch_command(LauncherConfig(num_processes=4), job, 1234)
    assert "torch.distributed.run" in torchrun and "--nproc_per_node=4" in torchrun and "--master_port=1234" in torchrun
    hostfile = tmp_path / "hostfile"
    multi = launch_command(LauncherConfig(num_processes=8, num_nodes=2, hostfile=str(hostfile)), job, 29500)
    assert multi[1:3] == ["-m", "deepspeed.launcher.runner"]
    assert f"--hostfile={hostfile}" in multi and "--num_nodes=2" in multi and "--num_gpus=8" in multi
    with pytest.raises(ValueError, match="hostfile"):
        launch_command(LauncherConfig(num_processes=8, num_nodes=2), job, 1)


def test_cancel_kills_the_whole_process_group(tiny_shards, tmp_path):
    from doughflow.training.launch import kill_group

    cfg = tiny_train_config(epochs=50, launcher={"num_processes": 2})
    job = TrainJob(tiny_shards[:2], [], pizza_columns(), 5, cfg, Preprocessing(64), str(tmp_path))
    import psutil

    process = start(job, cfg.launcher)
    deadline = time.time() + 60
    while len(psutil.Process(process.pid).children(recursive=True)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    tree = psutil.Process(process.pid).children(recursive=True)
    assert len(tree) >= 2 and process.poll() is None  # torchrun has started its ranks
    kill_group(process, grace_s=5)
    assert process.poll() is not None
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, f"left running: {alive}"  # no rank or loader worker survives
