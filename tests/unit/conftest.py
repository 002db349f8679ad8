"""Shared tiny pizza shards for the training tests (drawn once per session: ~1 s)."""

from __future__ import annotations

import pytest

from tests.support.sample_data import pizza_shards


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Three shards: 100 + 100 train rows, 40 val rows, 64x64."""
    return pizza_shards(tmp_path_factory.mktemp("pizza"), 240, rows_per_shard=100)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    """One local MLflow store (SQLite) for the tests that track: creating its schema costs seconds, so
    they share it and keep apart by experiment name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
