"""Train stage: stream the split's shards into DeepSpeed, in-process or under a launcher.

A retry (or a rerun with the same run id) resumes from the latest checkpoint in the stage folder.
Only crashes are retried: a rank that reported an error would fail the same way again.
"""

from __future__ import annotations

import logging

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for, problem_of
from doughflow.data.split import SplitResult
from doughflow.orchestration.artifacts import experiment_key, progress_artifact
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.training.job import TrainJob, TrainResult
from doughflow.training.launch import run_job
from doughflow.training.progress import read_progress
from doughflow.training.streaming import Columns, shard_refs


def train_job(config: ExperimentConfig, paths: RunPaths, splits: SplitResult) -> TrainJob:
    data = config.data
    train_manifest = splits.manifests["train"]
    return TrainJob(
        train_shards=shard_refs(train_manifest),
        val_shards=shard_refs(splits.manifests["val"]),
        columns=Columns(data.id_column, data.image_column, tuple(adapter_for(config).target_columns)),
        num_classes=len(config.labels),
        cfg=config.train,
        preprocessing=preprocessing_for(config),
        out_dir=str(paths.stage("train")),
        data_fingerprint=train_manifest.fingerprint,
        problem=problem_of(config),
    )


def train(config: ExperimentConfig, paths: RunPaths, splits: SplitResult) -> TrainResult:
    return run_train_job(train_job(config, paths, splits), config, paths)


def run_train_job(job: TrainJob, config: ExperimentConfig, paths: RunPaths) -> TrainResult:
    """Run a job with its progress mirrored into Prefect (the tuner passes a job with a control folder)."""
    logging.getLogger("doughflow.training").setLevel(logging.INFO)  # per-epoch metrics and progress in the run log

    def fraction() -> float | None:
        progress = read_progress(job.out_dir)
        return progress["fraction"] if progress else None

    with progress_artifact(
        fraction,
        experiment_key(config.name, "train-progress"),
        f"training progress of run `{paths.run_id}` (epochs and steps)",
    ):
        return run_job(job, config.train.launcher)
