"""The training contract: jobs cross a process boundary as JSON unchanged, results come back, resumes are guarded."""

from __future__ import annotations

import json
import math

from doughflow.preprocessing import Preprocessing
from doughflow.training.job import JOB_FILE, TrainJob, TrainResult, load_result, resume_fingerprint, write_result
from doughflow.training.streaming import ShardRef
from tests.support.configs import tiny_train_config
from tests.support.sample_data import pizza_columns


def _job(**changes) -> TrainJob:
    fields = dict(
        train_shards=[ShardRef("/data/a.parquet", 100, "ab" * 32), ShardRef("/data/b.parquet", 80)],
        val_shards=[ShardRef("/data/v.parquet", 40, "cd" * 32)],
        columns=pizza_columns(),
        num_classes=5,
        cfg=tiny_train_config(learning_rate=0.01, zero_stage=2, launcher={"num_processes": 2}),
        preprocessing=Preprocessing(96, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)),
        out_dir="/runs/r1",
        data_fingerprint="fp-1",
        control_dir="/runs/r1/control",
        problem="count",
    )
    fields.update(changes)
    return TrainJob(**fields)


def test_job_survives_json_unchanged():
    job = _job(problem="classification", preprocessing=Preprocessing(64, problem="classification"))
    again = TrainJob.from_json(job.to_json())
    assert again == job
    assert again.to_json() == job.to_json()
    assert JOB_FILE == "job.json"  # what launch writes and the launched entry point is handed


def test_job_written_before_the_optional_fields_still_reads():
    raw = json.loads(_job().to_json())
    for key in ("data_fingerprint", "control_dir", "problem"):
        del raw[key]
    del raw["preprocessing"]["problem"]
    job = TrainJob.from_json(json.dumps(raw))
    assert (job.data_fingerprint, job.control_dir, job.problem, job.preprocessing.problem) == ("", "", "count", "count")


def test_result_round_trips_through_result_json(tmp_path):
    result = TrainResult(
        model_path=str(tmp_path / "model.pt"),
        history_path="h.json",
        ds_config_path="ds.json",
        epochs_run=3,
        resumed_from_epoch=1,
        first_loss=2.5,
        final_loss=float("nan"),
        best_epoch=2,
        seconds=1.5,
        images_per_second=100.0,
        history={"step_loss": [2.5, 1.0], "epoch": []},
        resumed_from_step=7,
        global_steps=30,
        world_size=2,
        stopped_early=True,
        skipped_steps=1,
        bad_rows=4,
        weights_sha256="00" * 32,
    )
    write_result(result, tmp_path)
    loaded = load_result(tmp_path)
    assert math.isnan(loaded.final_loss)
    loaded.final_loss = result.final_loss = 0.0  # NaN != NaN; every other field must match exactly
    assert loaded == result


def test_resume_fingerprint_ignores_launcher_and_logging_settings():
    base = _job()
    same = _job(
        cfg=tiny_train_config(
            learning_rate=0.01,
            zero_stage=2,
            num_threads=4,
            log_every_steps=7,
            launcher={"num_processes": 2, "isolate": True, "master_port": 29555, "timeout_minutes": 5},
        ),
        out_dir="/elsewhere",
        control_dir="",
        val_shards=[],
    )
    assert resume_fingerprint(same, 2) == resume_fingerprint(base, 2)


def test_resume_fingerprint_changes_with_what_is_trained():
    base = resume_fingerprint(_job(), 2)
    changed = {
        "world size": resume_fingerprint(_job(), 4),
        "learning rate": resume_fingerprint(_job(cfg=tiny_train_config(learning_rate=0.02, zero_stage=2)), 2),
        "shards": resume_fingerprint(_job(train_shards=[ShardRef("/data/a.parquet", 100, "ab" * 32)]), 2),
        "data": resume_fingerprint(_job(data_fingerprint="fp-2"), 2),
        "classes": resume_fingerprint(_job(num_classes=4), 2),
        "problem": resume_fingerprint(_job(problem="classification"), 2),
    }
    assert all(value != base for value in changed.values()), changed
    assert len(set(changed.values())) == len(changed)
