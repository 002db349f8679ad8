"""Subsample stage: exact and near-dup removal, per-id and per-cluster caps, on Dask."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import TextRecords, adapter_for
from doughflow.data.columns import groups_in
from doughflow.data.dask_client import dask_client
from doughflow.data.dedup.subsample import SUBSAMPLE_PHASES, SubsampleResult, subsample
from doughflow.data.manifest import DataManifest
from doughflow.data.progress import StageProgress
from doughflow.orchestration.artifacts import experiment_key, progress_artifact, publish_markdown
from doughflow.privacy import pseudonymiser_for
from doughflow.reporting.subsample import subsample_markdown
from doughflow.runs import RunPaths


def subsample_stage(config: ExperimentConfig, paths: RunPaths, valid: DataManifest) -> SubsampleResult:
    """The Dask graph is built here and submitted to our own client (see doughflow.data.dask_client). Text
    datasets are compared on their text (the adapter's joined text columns) unless the config says otherwise.
    Progress through sketching, dedup and writing shows as tqdm bars on a terminal and as a Prefect
    progress artifact (``<experiment>-subsample-progress``)."""
    data = config.data
    adapter = adapter_for(config)
    text_column = adapter.text_column if isinstance(adapter, TextRecords) else None
    progress = StageProgress(SUBSAMPLE_PHASES)
    with (
        dask_client(config.dask, rows=valid.rows) as client,
        progress_artifact(
            progress.fraction,
            experiment_key(config.name, "subsample-progress"),
            f"subsampling progress of run `{paths.run_id}` (sketching, dedup, writing)",
        ),
    ):
        result = subsample(
            valid,
            paths.stage("data/subsample"),
            data.subsample,
            client,
            id_column=data.id_column,
            group_column=groups_in(valid, data.group_column),
            image_column=data.image_column,
            modality=adapter.modality,
            text_column=text_column,
            progress=progress,
        )
        progress.finish()
    return result


def publish_subsample(config: ExperimentConfig, result: SubsampleResult, run_id: str) -> None:
    """The subsampling report as its own Prefect artifact (``<experiment>-subsample``), so `flows.prepare`
    runs show it too (customer ids as pseudonyms: the artifact leaves the run's data folder)."""
    publish_markdown(
        experiment_key(config.name, "subsample"),
        subsample_markdown(result, pseudonymise=pseudonymiser_for(config)),
        f"doughflow subsampling of run `{run_id}`",
    )
