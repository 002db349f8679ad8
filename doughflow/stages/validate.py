"""Validate stage: good rows onward, bad rows to quarantine with a reason each; each image is decoded once, here."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for
from doughflow.data.dask_client import dask_client
from doughflow.data.dedup.signals import signals_for
from doughflow.data.imageheader import ImageLimits
from doughflow.data.manifest import DataManifest
from doughflow.data.validate import ValidationResult, validate_shards
from doughflow.runs import RunPaths


def validate(config: ExperimentConfig, paths: RunPaths, raw: DataManifest) -> ValidationResult:
    """Shards in parallel on Dask (doughflow.data.dask_client), with the header limits of ``data`` applied
    before any image is decoded and the signals the subsample stage will read computed in the same pass."""
    data = config.data
    adapter = adapter_for(config)
    limits = ImageLimits(tuple(data.image_formats), data.max_image_bytes, data.max_image_pixels)
    with dask_client(config.dask, rows=raw.rows) as client:
        return validate_shards(
            raw,
            paths.stage("data/valid"),
            id_column=data.id_column,
            image_column=data.image_column,
            group_column=data.group_column,
            target_columns=adapter.target_columns,
            max_count=data.max_count,
            adapter=adapter,
            limits=limits,
            signals=signals_for(data.subsample, adapter.modality),
            client=client,
        )
