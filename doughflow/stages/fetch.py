"""Fetch stage: resolve the source (drawing the built-in pizza set on first use) and copy it into
the run's raw shards with a manifest and fingerprint."""

from __future__ import annotations

import logging

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for
from doughflow.data.manifest import DataManifest
from doughflow.data.sources.builtin import draw_builtin_source, missing_label_defaults
from doughflow.data.sources.extra import append_extra_sources
from doughflow.data.sources.fetch import FetchOptions, fetch_source
from doughflow.runs import RunPaths

log = logging.getLogger(__name__)


def resolve_source(config: ExperimentConfig, paths: RunPaths) -> str:
    if config.data.source.url:
        return config.data.source.url
    return str(draw_builtin_source(config.data, config.label_names, paths.datasets_dir))


def label_defaults(config: ExperimentConfig) -> dict[str, float]:
    """Target column -> value for source files without it: the config's, plus the built-in
    generator's toppings that were not yet on an earlier era's menu."""
    defaults = dict(config.data.label_defaults)
    if not config.data.source.url:
        defaults = {**missing_label_defaults(config.data.source.generator, config.label_names), **defaults}
    return {f"{config.data.target_prefix}{label}": value for label, value in defaults.items()}


def fetch(config: ExperimentConfig, paths: RunPaths) -> DataManifest:
    url = resolve_source(config, paths)
    source, data = config.data.source, config.data
    text = data.text_columns if adapter_for(config).modality == "text" else []
    options = FetchOptions(
        format=source.format,
        retries=source.retries,
        backoff_seconds=source.backoff_seconds,
        id_column=data.id_column,
        image_column=data.image_column,
        labels=source.labels,
        column_defaults=label_defaults(config),
        string_columns=tuple(text),
    )
    manifest = fetch_source(url, paths.stage("data/raw"), rows_per_shard=data.rows_per_shard, options=options)
    return append_extra_sources(
        manifest,
        data.extra_sources,
        paths.stage("data/raw"),
        id_column=data.id_column,
        rows_per_shard=data.rows_per_shard,
    )
