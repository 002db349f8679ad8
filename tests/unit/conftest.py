"""Shared tiny pizza shards for the training tests (drawn once per session: ~1 s)."""

from __future__ import annotations

import pytest

from doughflow.config import TrainConfig
from doughflow.training.sample_data import pizza_shards


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Three shards: 100 + 100 train rows, 40 val rows, 64x64."""
    return pizza_shards(tmp_path_factory.mktemp("pizza"), 240, rows_per_shard=100)


def tiny_train_config(**overrides) -> TrainConfig:
    base = {"epochs": 2, "micro_batch_size": 16, "model": {"width": 8}, "warmup_steps": 2, "checkpoint_every_steps": 3,
            "num_threads": 1, "loader": {"num_workers": 2, "piece_rows": 40, "shuffle_buffer": 64}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)
