"""Subsample stage: exact and near-dup removal, per-id and per-cluster caps, on Dask."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import TextRecords, adapter_for
from doughflow.data.columns import groups_in
from doughflow.data.dask_client import dask_client
from doughflow.data.manifest import DataManifest
from doughflow.data.dedup.subsample import SubsampleResult, subsample
from doughflow.orchestration.artifacts import artifact_key, publish_markdown
from doughflow.reporting.subsample import subsample_markdown
from doughflow.runs import RunPaths


def subsample_stage(config: ExperimentConfig, paths: RunPaths, valid: DataManifest) -> SubsampleResult:
    """The Dask graph is built here and submitted to our own client (see doughflow.data.dask_client). Text
    datasets are compared on their text (the adapter's joined text columns) unless the config says otherwise."""
    data = config.data
    adapter = adapter_for(config)
    text_column = adapter.text_column if isinstance(adapter, TextRecords) else None
    with dask_client(config.dask, rows=valid.rows) as client:
        return subsample(valid, paths.stage("data/subsample"), data.subsample, client, id_column=data.id_column,
                         group_column=groups_in(valid, data.group_column), image_column=data.image_column,
                         modality=adapter.modality, text_column=text_column)




def publish_subsample(result: SubsampleResult, run_id: str) -> None:
    """The subsampling report as its own Prefect artifact, so `flows.prepare` runs show it too."""
    publish_markdown(artifact_key("subsample", run_id), subsample_markdown(result),
                     f"doughflow subsampling for {run_id}")
