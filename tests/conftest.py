"""Shared fixtures: a Prefect test API for the session, and a tiny pizza set drawn once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from doughflow.config import ExperimentConfig, load_config  # noqa: E402
from doughflow.data.synthetic.pizza import generate_pizza_dataset  # noqa: E402

TINY_OVERRIDES = [
    "data.source.generator.num_images=300",
    "data.source.generator.rows_per_shard=120",
    "data.source.generator.num_customers=60",
    "data.rows_per_shard=100",
    "train.epochs=2",
    "train.micro_batch_size=32",
    "train.warmup_steps=5",
    "evaluate.min_exact_count_accuracy=0",
    "evaluate.worst_examples=4",
    # A 2-epoch model is not releasable; the smoke test checks the plumbing, so the behavioural
    # gates only record their results here (tests/unit/test_gates.py shows them rejecting).
    "release.properties.examples=4",
    "release.properties.max_failure_rate=1.0",
    "release.quantization.calibration_samples=16",
    "release.quantization.latency_repeats=2",
]


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One Prefect API for all flow tests; a temporary PREFECT_HOME keeps the user's state clean."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def tiny_config(tmp_path) -> ExperimentConfig:
    return load_config(None, TINY_OVERRIDES + [f"artifacts_dir={tmp_path / 'artifacts'}"])


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """The tiny pizza set as Parquet shards (with planted copies and corrupt rows)."""
    config = load_config(None, TINY_OVERRIDES)
    out = tmp_path_factory.mktemp("tiny_source")
    generate_pizza_dataset(config.data.source.generator, config.labels, out, workers=1)
    return out
