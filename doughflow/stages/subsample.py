"""Subsample stage: exact and near-dup removal, per-id and per-cluster caps, on Dask."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.dask_client import dask_client
from doughflow.data.manifest import DataManifest
from doughflow.data.dedup.subsample import SubsampleResult, subsample
from doughflow.orchestration.artifacts import artifact_key, publish_markdown
from doughflow.privacy import pseudonymiser_for
from doughflow.reporting.subsample import subsample_markdown
from doughflow.runs import RunPaths


def subsample_stage(config: ExperimentConfig, paths: RunPaths, valid: DataManifest) -> SubsampleResult:
    """The Dask graph is built here and submitted to our own client (see doughflow.data.dask_client)."""
    data = config.data
    with dask_client(config.dask, rows=valid.rows) as client:
        return subsample(valid, paths.stage("data/subsample"), data.subsample, client, id_column=data.id_column,
                         group_column=data.group_column, image_column=data.image_column)




def publish_subsample(config: ExperimentConfig, result: SubsampleResult, run_id: str) -> None:
    """The subsampling report as its own Prefect artifact, so `flows.prepare` runs show it too (customer
    ids as pseudonyms: the artifact leaves the run's data folder)."""
    publish_markdown(artifact_key("subsample", run_id),
                     subsample_markdown(result, pseudonymise=pseudonymiser_for(config)),
                     f"doughflow subsampling for {run_id}")
