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
    # CoreML (2.5 s of imports per flow process, then about 0.7 s per conversion, two per run) is built in
    # the whole-release run of tests/flows/test_train_flow.py, the deployment runs through a worker
    # (tests/deployments) and tests/unit/export/test_formats.py; the other tiny runs release ONNX and int8.
    "release.coreml.enabled=false",
    # Dask's dashboard (bokeh: 0.5 s of imports per flow process) is checked by tests/unit/data/test_dask_client.py
    # and tests/unit/orchestration/test_logs.py.
    "dask.dashboard_port=null",
]

# The shapes example (configs/shapes.yaml) on a tiny image folder, small enough for a 2-core CI box: 32 px
# images, ten short epochs (about 4 s), CoreML left to the pizza test. Its release gate on test accuracy
# (chance is 0.25: four classes) holds for every one of 20 training seeds with a margin, measured by
# `python benchmarks/test_margins.py --checks shapes`: worst seed 0.60, median 0.75 with 10 epochs. With
# 3 epochs the worst seeds reached 0.27 and 0.29 against a bar of 0.3 (and the 1-thread run 0.2182,
# the CI failure), so that test failed whenever the weights came out a little different.
TINY_SHAPES_IMAGES = 240  # drawn with generate_shapes(out, TINY_SHAPES_IMAGES, size=32, other=6)
TINY_SHAPES_OVERRIDES = [
    "data.image_size=32",
    "data.rows_per_shard=100",
    "train.epochs=10",
    "train.micro_batch_size=16",
    "train.warmup_steps=5",
    "train.learning_rate=0.005",
    "evaluate.worst_examples=4",
    "evaluate.min_metrics={accuracy: 0.45}",
    "release.coreml.enabled=false",
    "release.properties.examples=8",
    "release.properties.max_failure_rate=1.0",
    "release.quantization.calibration_samples=16",
    "release.quantization.latency_repeats=2",
]

# flows.tune on the tiny pizza set (with TINY_OVERRIDES), as tests/flows/test_tune_flow.py runs it.
TINY_TUNE_OVERRIDES = [
    "train.model.width=8",
    "train.loader.num_workers=0",  # tiny data: loader processes cost more than they save
    "tune.search_space={train.learning_rate: {type: float, low: 1.0e-6, high: 0.01, log: true},"
    " train.model.width: {type: categorical, choices: [8, 12]}}",
    # val_mae is continuous, so the median comparison cannot tie. Trial 0 is a sound config; trial 1
    # (learning rate 1e-6) barely moves from its initial weights and is worse after epoch 1 than
    # the median of the one finished trial, so the pruner stops it there (benchmarks/test_margins.py shows
    # the gap over 20 training seeds).
    "tune.metric=val_mae",
    "tune.direction=minimize",
    "tune.pruner={kind: median, n_startup_trials: 1, n_warmup_steps: 0}",
    "tune.enqueue=[{train.learning_rate: 0.01, train.model.width: 8}, {train.learning_rate: 1.0e-6, train.model.width: 8}]",
]

# The stages of a train flow, as the registry and Prefect name them.
DATA_STAGES = {"fetch", "validate", "subsample", "split"}
MODEL_STAGES = {
    "train",
    "evaluate",
    "export-onnx",
    "deploy-formats",
    "behaviour-tests",
    "release-gates",
    "report",
    "package",
}

# validate_shards' column arguments for the pizza schema.
PIZZA_TARGETS = [f"count_{label}" for label in ("pepperoni", "mushroom", "olive", "basil", "pepper")]
PIZZA_COLUMNS = dict(
    id_column="sample_id", image_column="image", group_column="customer_id", target_columns=PIZZA_TARGETS, max_count=20
)


def tiny_train_config(**overrides: Any) -> TrainConfig:
    """A 2-epoch, width-8 training config with checkpoints every 3 steps and 2 loader workers."""
    base: dict[str, Any] = {
        "epochs": 2,
        "micro_batch_size": 16,
        "model": {"width": 8},
        "warmup_steps": 2,
        "checkpoint_every_steps": 3,
        "num_threads": 1,
        "loader": {"num_workers": 2, "piece_rows": 40, "shuffle_buffer": 64},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return TrainConfig.model_validate(base)
