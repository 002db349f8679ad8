"""Fetch stage: resolve the source (drawing the built-in pizza set on first use) and copy it into
the run's raw shards with a manifest and fingerprint."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.data.extra_sources import append_extra_sources
from doughflow.data.fetch import DataManifest, FetchOptions, fetch_source
from doughflow.data.pizza import generate_pizza_dataset
from doughflow.runs import RunPaths
from tasks.common import io_task

log = logging.getLogger(__name__)


def builtin_dataset_dir(config: ExperimentConfig, paths: RunPaths) -> Path:
    """Generated data is keyed by everything that shapes it, so a changed label list or seed gets a
    new folder and an unchanged one is reused by every run."""
    spec = {"generator": config.data.source.generator.model_dump(mode="json"), "labels": config.labels, "version": 1}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return paths.datasets_dir / f"pizza-{key}"


def resolve_source(config: ExperimentConfig, paths: RunPaths) -> str:
    if config.data.source.url:
        return config.data.source.url
    folder = builtin_dataset_dir(config, paths)
    if not (folder / "_SUCCESS").exists():
        # Draw into a private folder and publish it with one rename: a killed run leaves no half
        # dataset behind, and two runs drawing at once never write into the same files.
        log.info("drawing the built-in pizza set into %s", folder)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        generate_pizza_dataset(config.data.source.generator, config.labels, tmp, progress=True)
        (tmp / "_SUCCESS").write_text("ok\n")
        try:
            tmp.rename(folder)
        except OSError:  # another run published the same dataset first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    return str(folder)


def fetch(config: ExperimentConfig, paths: RunPaths) -> DataManifest:
    url = resolve_source(config, paths)
    source, data = config.data.source, config.data
    options = FetchOptions(format=source.format, retries=source.retries, backoff_seconds=source.backoff_seconds,
                           id_column=data.id_column, image_column=data.image_column, labels=source.labels)
    manifest = fetch_source(url, paths.stage("data/raw"), rows_per_shard=data.rows_per_shard, options=options)
    return append_extra_sources(manifest, data.extra_sources, paths.stage("data/raw"),
                                id_column=data.id_column, rows_per_shard=data.rows_per_shard)


fetch_task = io_task(name="fetch")(fetch)
