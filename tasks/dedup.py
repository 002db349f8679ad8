"""Exact dedup stage."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.dedup import DedupResult, exact_dedup
from doughflow.data.fetch import DataManifest
from doughflow.runs import RunPaths
from tasks.common import compute_task


def dedup(config: ExperimentConfig, paths: RunPaths, valid: DataManifest) -> DedupResult:
    return exact_dedup(valid, paths.stage("data/dedup"), id_column=config.data.id_column,
                       target_columns=config.data.target_columns(config.labels))


dedup_task = compute_task(name="exact-dedup")(dedup)
