"""Training: determinism, resume after a real SIGKILL, NaN handling, early stopping, outputs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from doughflow.preprocessing import Preprocessing
from doughflow.training.checkpoint import latest_tag, state_dict_hash
from doughflow.training.job import TrainJob
from doughflow.training.launch import run_job, start
from doughflow.training.loop import run_training
from doughflow.training.process import usable_cores
from tests.support.configs import tiny_train_config
from tests.support.sample_data import pizza_columns


def _job(shards, out_dir: Path, cfg) -> TrainJob:
    return TrainJob(shards[:2], shards[2:], pizza_columns(), 5, cfg, Preprocessing(64), str(out_dir), "fp-test")


@pytest.fixture(scope="module")
def reference(tiny_shards, tmp_path_factory):
    """One uninterrupted in-process run that several tests compare against."""
    return run_training(_job(tiny_shards, tmp_path_factory.mktemp("ref"), tiny_train_config()))


def test_run_writes_outputs_metrics_and_checkpoints(reference):
    out = Path(reference.model_path).parent
    assert reference.global_steps == 2 * 12 and reference.epochs_run == 2
    assert [e["epoch"] for e in reference.history["epoch"]] == [1, 2]
    assert {"val_mae", "val_exact_count_accuracy", "img_s", "train_loss"} <= set(reference.history["epoch"][0])
    assert len(reference.history["step_loss"]) == 24 and reference.final_loss < reference.first_loss
    assert (out / "best_model.pt").exists() and reference.best_epoch in (1, 2)
    ds_config = json.loads((out / "ds_config.json").read_text())
    assert ds_config["train_micro_batch_size_per_gpu"] == 16 and ds_config["doughflow"]["world_size"] == 1
    tags = sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())
    assert len(tags) == 2 and latest_tag(out / "checkpoints") == "step-00000024"  # keep_checkpoints=2, pruned
    assert (out / "checkpoints" / "step-00000024" / "rng_rank0.npz").exists()
    assert (out / "checkpoints" / "step-00000024" / "sha256.json").exists()  # digests recorded at save time


def test_same_data_config_seed_gives_identical_weights(reference, tiny_shards, tmp_path):
    again = run_training(_job(tiny_shards, tmp_path, tiny_train_config()))
    assert again.weights_sha256 == reference.weights_sha256
    assert again.history["step_loss"] == reference.history["step_loss"]
    other_seed = run_training(_job(tiny_shards, tmp_path / "seed", tiny_train_config(seed=99, epochs=1)))
    assert other_seed.weights_sha256 != reference.weights_sha256


def test_num_threads_0_trains_alike_whatever_threads_the_caller_had(tiny_shards, tmp_path):
    """The flaky-test cause: num_threads=0 used to inherit the caller's torch thread count (1 after an
    earlier num_threads=1 job in the same pytest worker), and 1 and 2 threads give different weights."""
    cfg = tiny_train_config(num_threads=0, epochs=1, loader={"num_workers": 0})
    before = torch.get_num_threads()
    hashes = []
    try:
        for caller_threads in (1, 2):
            torch.set_num_threads(caller_threads)
            result = run_job(_job(tiny_shards, tmp_path / str(caller_threads), cfg), cfg.launcher)
            assert torch.get_num_threads() == caller_threads  # the caller's count comes back
            assert result.history["num_threads"] == usable_cores()
            hashes.append(result.weights_sha256)
    finally:
        torch.set_num_threads(before)
    assert hashes[0] == hashes[1]


def test_deepspeed_csv_monitor_gets_the_trainers_events_and_changes_nothing(reference, tiny_shards, tmp_path):
    cfg = tiny_train_config(
        log_every_steps=4,
        deepspeed={
            "monitor": {"csv_monitor": {"enabled": True, "output_path": str(tmp_path / "csv"), "job_name": "tiny"}}
        },
    )
    monitored = run_training(_job(tiny_shards, tmp_path / "run", cfg))
    assert monitored.weights_sha256 == reference.weights_sha256  # the same training, only watched

    def column(name: str) -> list[tuple[int, float]]:
        rows = (tmp_path / "csv" / "tiny" / f"{name}.csv").read_text().splitlines()[1:]
        return [(int(step), float(value)) for step, value in (row.split(",") for row in rows)]

    assert [step for step, _ in column("Train_Samples_lr")] == [16 * (i + 1) for i in range(24)]  # every update
    losses = column("Train_Samples_train_loss")
    assert [step for step, _ in losses] == [64, 128, 192, 256, 320, 384]  # every 4 of 12 steps an epoch
    assert [value for _, value in losses] == [monitored.history["step_loss"][i] for i in (3, 7, 11, 15, 19, 23)]
    epochs = monitored.history["epoch"]
    assert column("Val_Samples_mae") == [(192, epochs[0]["val_mae"]), (384, epochs[1]["val_mae"])]
    assert [value for _, value in column("Train_Samples_epoch")] == [1.0, 2.0]
    assert json.loads(Path(monitored.ds_config_path).read_text())["csv_monitor"]["output_path"] == str(tmp_path / "csv")


def test_sigkill_mid_run_then_rerun_matches_uninterrupted(reference, tiny_shards, tmp_path):
    cfg = tiny_train_config(launcher={"isolate": True})
    job = _job(tiny_shards, tmp_path, cfg)
    process = start(job, cfg.launcher)
    deadline = time.time() + 120
    while latest_tag(tmp_path / "checkpoints") is None and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the real thing: no handler, no cleanup
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert not (tmp_path / "result.json").exists(), "the run finished before it could be killed"
    killed_at = latest_tag(tmp_path / "checkpoints")
    resumed = run_job(job, cfg.launcher)  # the rerun a Prefect retry makes (same folder)
    assert resumed.resumed_from_step == int(killed_at.split("-")[1]) > 0
    assert resumed.resumed_from_step < reference.global_steps
    assert resumed.weights_sha256 == reference.weights_sha256
    assert state_dict_hash(torch.load(resumed.model_path, weights_only=True)) == state_dict_hash(
        torch.load(reference.model_path, weights_only=True)
    )
    assert resumed.history["step_loss"] == reference.history["step_loss"]
    # a finished run is not trained again
    assert run_job(job, cfg.launcher).epochs_run == 0


def test_resume_refuses_a_checkpoint_from_another_config(reference, tiny_shards):
    from doughflow.training.checkpoint import CheckpointMismatchError

    cfg = tiny_train_config(learning_rate=0.01)
    with pytest.raises(CheckpointMismatchError, match="another config"):
        run_training(_job(tiny_shards, Path(reference.model_path).parent, cfg))


def test_nan_loss_stops_naming_step_and_samples(tiny_shards, tmp_path):
    cfg = tiny_train_config(model={"name": "test_nan_counter", "import_module": "tests.support.nan_model"})
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1 step 0 .*sample ids: pz-"):
        run_training(_job(tiny_shards, tmp_path, cfg))


def test_nan_loss_skipped_and_counted_when_configured(tiny_shards, tmp_path):
    cfg = tiny_train_config(
        model={"name": "test_nan_counter", "import_module": "tests.support.nan_model"},
        on_nan_loss="skip",
        max_skipped_steps=3,
    )
    with pytest.raises(FloatingPointError, match="max_skipped_steps=3"):
        run_training(_job(tiny_shards, tmp_path, cfg))


def test_early_stopping_keeps_best_checkpoint(tiny_shards, tmp_path):
    # train_loss falls every epoch, so with mode=max epoch 1 stays best and patience 1 stops after epoch 2
    cfg = tiny_train_config(
        epochs=4, early_stopping={"metric": "train_loss", "mode": "max", "patience": 1}, loader={"num_workers": 0}
    )
    result = run_training(_job(tiny_shards, tmp_path, cfg))
    assert result.stopped_early and result.epochs_run == 2 and result.best_epoch == 1
    assert state_dict_hash(torch.load(result.model_path, weights_only=True)) == state_dict_hash(
        torch.load(tmp_path / "best_model.pt", weights_only=True)
    )
    assert state_dict_hash(torch.load(result.model_path, weights_only=True)) != result.weights_sha256


def test_gradient_accumulation_and_precision_come_from_config(tiny_shards, tmp_path):
    cfg = tiny_train_config(
        epochs=1,
        gradient_accumulation_steps=2,
        zero_stage=2,
        precision="bf16",
        lr_schedule="linear",
        loader={"num_workers": 0},
    )
    result = run_training(_job(tiny_shards, tmp_path, cfg))
    assert len(result.history["step_loss"]) == 12 and result.global_steps == 6  # 12 micro-batches, 6 updates
    ds_config = json.loads(Path(result.ds_config_path).read_text())
    assert ds_config["gradient_accumulation_steps"] == 2 and ds_config["zero_optimization"]["stage"] == 2
    assert ds_config["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert ds_config["doughflow"]["scheduler"]["type"] == "warmup_linear"


def test_zero3_gathers_whole_weights_for_final_and_best_model(tiny_shards, tmp_path):
    """Under ZeRO-3 each rank holds a shard of every parameter; what is saved must be whole and
    agree with ZeRO-0 (up to float reduction order)."""
    plain = run_training(_job(tiny_shards, tmp_path / "z0", tiny_train_config(zero_stage=0, epochs=1)))
    sharded = run_training(_job(tiny_shards, tmp_path / "z3", tiny_train_config(zero_stage=3, epochs=1)))
    for name in ("model.pt", "best_model.pt", "last_model.pt"):
        expected = torch.load(Path(plain.model_path).parent / name, map_location="cpu", weights_only=True)
        got = torch.load(Path(sharded.model_path).parent / name, map_location="cpu", weights_only=True)
        assert got.keys() == expected.keys()
        for key, tensor in expected.items():
            assert got[key].shape == tensor.shape and got[key].numel() > 0, key
            torch.testing.assert_close(got[key].float(), tensor.float(), atol=1e-3, rtol=1e-3)
    assert abs(sharded.final_loss - plain.final_loss) < 1e-3


def test_auto_micro_batch_trains_as_the_same_sizes_written_out(tiny_shards, tmp_path):
    """The choice is recorded and trained with; probing leaves the seed's weights and data order alone."""
    auto = run_training(
        _job(
            tiny_shards,
            tmp_path / "auto",
            tiny_train_config(
                epochs=1,
                micro_batch_size="auto",
                memory_budget_gb=0.02,
                global_batch_size=48,
                loader={"num_workers": 0},
            ),
        )
    )
    recipe = auto.recipe
    assert recipe["micro_batch"]["method"] == "cpu memory budget" and recipe["global_batch_size"] == 48
    micro, accumulation = recipe["micro_batch_size"], recipe["gradient_accumulation_steps"]
    assert micro * accumulation == 48 and accumulation > 1
    assert json.loads(Path(auto.ds_config_path).read_text())["train_micro_batch_size_per_gpu"] == micro
    written = run_training(
        _job(
            tiny_shards,
            tmp_path / "written",
            tiny_train_config(
                epochs=1, micro_batch_size=micro, gradient_accumulation_steps=accumulation, loader={"num_workers": 0}
            ),
        )
    )
    assert written.weights_sha256 == auto.weights_sha256
