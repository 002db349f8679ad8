"""Tiny experiment and training configs: small enough for a flow in seconds, real in every stage."""

from __future__ import annotations

from typing import Any

from doughflow.config import TrainConfig

TINY_OVERRIDES = [
    "data.source.generator.num_images=300",
    "data.source.generator.num_customers=60",
    "data.rows_per_shard=100",
    "train.epochs=2",
    "train.micro_batch_size=32",
    "train.warmup_steps=5",
    "evaluate.min_exact_count_accuracy=0",
    "evaluate.worst_examples=4",
    # A 2-epoch model is not releasable; the smoke test checks the plumbing, so the behavioural
    # gates only record their results here (tests/unit/release/test_gates.py shows them rejecting).
    "release.properties.examples=4",
    "release.properties.max_failure_rate=1.0",
    "release.quantization.calibration_samples=16",
    "release.quantization.latency_repeats=2",
    # MLflow (a few seconds of imports and a store per run) is checked by the tests that turn it on:
    # tests/flows/test_train_flow.py and test_tune_flow.py (a local store), tests/stack/test_mlflow.py (a server).
    "tracking.mlflow.enabled=false",
]

# The stages of a train flow, as the registry and Prefect name them.
DATA_STAGES = {"fetch", "validate", "subsample", "split"}
MODEL_STAGES = {"train", "evaluate", "export-onnx", "deploy-formats", "behaviour-tests", "release-gates", "report", "package"}

# validate_shards' column arguments for the pizza schema.
PIZZA_TARGETS = [f"count_{label}" for label in ("pepperoni", "mushroom", "olive", "basil", "pepper")]
PIZZA_COLUMNS = dict(id_column="sample_id", image_column="image", group_column="customer_id",
                     target_columns=PIZZA_TARGETS, max_count=20)


def tiny_train_config(**overrides: Any) -> TrainConfig:
    """A 2-epoch, width-8 training config with checkpoints every 3 steps and 2 loader workers."""
    base: dict[str, Any] = {"epochs": 2, "micro_batch_size": 16, "model": {"width": 8}, "warmup_steps": 2,
                            "checkpoint_every_steps": 3, "num_threads": 1,
                            "loader": {"num_workers": 2, "piece_rows": 40, "shuffle_buffer": 64}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)
