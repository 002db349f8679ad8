"""Validate stage: good rows onward, bad rows to quarantine with a reason each."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for
from doughflow.data.manifest import DataManifest
from doughflow.data.validate import ValidationResult, validate_shards
from doughflow.runs import RunPaths


def validate(config: ExperimentConfig, paths: RunPaths, raw: DataManifest) -> ValidationResult:
    data = config.data
    adapter = adapter_for(config)
    return validate_shards(raw, paths.stage("data/valid"), id_column=data.id_column, image_column=data.image_column,
                           group_column=data.group_column, target_columns=adapter.target_columns,
                           max_count=data.max_count, adapter=adapter)
