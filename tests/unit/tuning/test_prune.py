"""Pruning: the tuner's verdict stops the trainer exactly at an epoch boundary, in-process and in a
launched training process, and a missing or broken judge never hangs or kills the training."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from doughflow.preprocessing import Preprocessing
from doughflow.training.control import await_verdict, publish_epoch, read_epochs, send_verdict
from doughflow.training.job import TrainJob
from doughflow.training.launch import run_job
from doughflow.training.loop import run_training
from doughflow.tuning.prune import PruneMonitor
from tests.support.configs import tiny_train_config
from tests.support.sample_data import pizza_columns


def _job(shards, out_dir: Path, cfg) -> TrainJob:
    return TrainJob(
        shards[:2],
        shards[2:],
        pizza_columns(),
        5,
        cfg,
        Preprocessing(64),
        str(out_dir),
        "fp-test",
        control_dir=str(out_dir / "control"),
    )


def test_prune_verdict_stops_in_process_training_after_that_epoch(tiny_shards, tmp_path):
    cfg = tiny_train_config(epochs=3)
    job = _job(tiny_shards, tmp_path, cfg)
    seen = []

    def judge(epoch: int, value: float) -> bool:
        seen.append((epoch, value))
        return epoch == 1

    with PruneMonitor(job.control_dir, "val_exact_count_accuracy", judge, cfg.epochs) as monitor:
        result = run_training(job)
    assert monitor.pruned_after == 1 and [e for e, _ in seen] == [1]
    assert result.epochs_run == 1 and result.stopped_early and [e["epoch"] for e in result.history["epoch"]] == [1]
    assert seen[0][1] == result.history["epoch"][0]["val_exact_count_accuracy"]
    assert Path(result.model_path).exists()  # a pruned run still ends cleanly with its outputs
    assert json.loads((tmp_path / "control" / "verdict-00001.json").read_text())["stop"] is True


@pytest.mark.slow  # ~25 s: a fresh Python process imports torch and DeepSpeed
def test_prune_verdict_reaches_a_launched_training_process(tiny_shards, tmp_path):
    cfg = tiny_train_config(epochs=3, launcher={"isolate": True})
    job = _job(tiny_shards, tmp_path, cfg)
    with PruneMonitor(job.control_dir, "val_mae", lambda epoch, value: epoch == 2, cfg.epochs) as monitor:
        result = run_job(job, cfg.launcher)  # `python -m doughflow.training.entry` in its own session
    assert monitor.pruned_after == 2 and sorted(monitor.values) == [1, 2]
    assert result.epochs_run == 2 and [e["epoch"] for e in result.history["epoch"]] == [1, 2]


def test_the_last_epoch_is_reported_but_never_counts_as_pruned(tmp_path):
    judged = []
    with PruneMonitor(tmp_path, "val_mae", lambda e, v: judged.append(e) or True, total_epochs=2) as monitor:
        publish_epoch(tmp_path, {"epoch": 1, "val_mae": 0.5})
        assert await_verdict(tmp_path, 1, timeout_s=10) is True
        publish_epoch(tmp_path, {"epoch": 2, "val_mae": 0.4})  # the trainer does not wait after the last epoch
    assert judged == [1, 2] and monitor.pruned_after == 1


def test_no_verdict_in_time_means_training_goes_on(tmp_path):
    publish_epoch(tmp_path, {"epoch": 1, "val_mae": float("nan")})
    assert read_epochs(tmp_path) == [{"epoch": 1, "val_mae": None}]
    assert await_verdict(tmp_path, 1, timeout_s=0.2) is False
    send_verdict(tmp_path, 1, stop=True)
    assert await_verdict(tmp_path, 1, timeout_s=0.2) is True


@pytest.mark.parametrize("value", [None, float("nan")])
def test_missing_metric_or_broken_judge_continue(tmp_path, value):
    def broken(epoch: int, metric: float) -> bool:
        raise RuntimeError("storage is down")

    with PruneMonitor(tmp_path / "a", "val_mae", broken, total_epochs=3) as monitor:
        publish_epoch(tmp_path / "a", {"epoch": 1, "val_mae": 0.3})
        assert await_verdict(tmp_path / "a", 1, timeout_s=10) is False
    assert monitor.pruned_after is None
    with PruneMonitor(tmp_path / "b", "val_mae", lambda e, v: True, total_epochs=3) as monitor:
        publish_epoch(tmp_path / "b", {"epoch": 1, "val_mae": value})
        assert await_verdict(tmp_path / "b", 1, timeout_s=10) is False
    assert monitor.pruned_after is None and monitor.values == {}


def test_stale_verdicts_of_an_earlier_attempt_are_cleared(tmp_path):
    send_verdict(tmp_path, 1, stop=True)
    publish_epoch(tmp_path, {"epoch": 1, "val_mae": 0.1})
    done = threading.Event()
    with PruneMonitor(tmp_path, "val_mae", lambda e, v: done.set() or False, total_epochs=3):
        publish_epoch(tmp_path, {"epoch": 1, "val_mae": 0.2})
        assert await_verdict(tmp_path, 1, timeout_s=10) is False
    assert done.is_set()
