"""Train stage: DeepSpeed in-process on the train split, validated each epoch."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.split import SplitResult
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.training.data import load_split_for
from doughflow.training.trainer import TrainResult, train_model
from tasks.common import compute_task


def train(config: ExperimentConfig, paths: RunPaths, splits: SplitResult) -> TrainResult:
    train_split = load_split_for(config, splits.manifests["train"], desc="decoding train")
    val_split = load_split_for(config, splits.manifests["val"], desc="decoding val")
    return train_model(train_split, val_split, len(config.labels), config.train, preprocessing_for(config),
                       paths.stage("train"))


train_task = compute_task(name="train")(train)
