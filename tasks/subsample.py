"""Subsample stage: exact and near-dup removal, per-id and per-cluster caps, on Dask."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.dask_client import dask_client
from doughflow.data.manifest import DataManifest
from doughflow.data.dedup.subsample import SubsampleResult, subsample
from doughflow.runs import RunPaths
from tasks.common import compute_task


def subsample_stage(config: ExperimentConfig, paths: RunPaths, valid: DataManifest) -> SubsampleResult:
    """The Dask graph is built here and submitted to our own client (see doughflow.data.dask_client)."""
    data = config.data
    with dask_client(config.dask, rows=valid.rows) as client:
        return subsample(valid, paths.stage("data/subsample"), data.subsample, client, id_column=data.id_column,
                         group_column=data.group_column, image_column=data.image_column)


subsample_task = compute_task(name="subsample")(subsample_stage)


def publish_subsample(result: SubsampleResult, run_id: str) -> None:
    """The subsampling report as its own Prefect artifact, so `flows.prepare` runs show it too."""
    from prefect.artifacts import create_markdown_artifact

    from doughflow.reporting.subsample import subsample_markdown

    key = "".join(c if c.isalnum() else "-" for c in run_id.lower())[:90]
    create_markdown_artifact(key=f"subsample-{key}", markdown=subsample_markdown(result),
                             description=f"doughflow subsampling for {run_id}")


publish_subsample_task = compute_task(name="publish-subsample")(publish_subsample)
