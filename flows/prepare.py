"""The data stages alone: fetch -> validate -> subsample -> split. ``flows.train`` runs the same
``prepare_data`` sub-flow. ``python -m flows.prepare [--config FILE] [key.path=value ...]``"""

from __future__ import annotations

if __name__ == "__main__":  # parse arguments before Prefect and torch load: --help and typos answer at once
    from doughflow.cli.flow import main

    main("flows.prepare:prepare", __doc__, trains=False)

from prefect import flow

from doughflow.config import ExperimentConfig
from doughflow.data.dedup.subsample import SubsampleResult
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SplitResult
from doughflow.data.validate import ValidationResult
from doughflow.orchestration.results import RESULT_SERIALIZER
from doughflow.orchestration.runtime import RELEASE_RUN_LOCKS
from doughflow.runs import RunId, RunPaths
from tasks.fetch import fetch_task
from tasks.run import data_summary_task, result_storage_task, start_run_task
from tasks.split import split_task
from tasks.subsample import publish_subsample_task, subsample_task
from tasks.validate import validate_task


@flow(
    name="prepare-data",
    description="Fetch, validate, subsample (dedup and caps on Dask) and split.",
    result_serializer=RESULT_SERIALIZER,
)
def prepare_data(
    config: ExperimentConfig, paths: RunPaths
) -> tuple[DataManifest, ValidationResult, SubsampleResult, SplitResult]:
    raw = fetch_task(config, paths)
    validated = validate_task(config, paths, raw)
    subsampled = subsample_task(config, paths, validated.manifest)
    publish_subsample_task(config, subsampled, paths.run_id)
    splits = split_task(config, paths, subsampled.manifest)
    return raw, validated, subsampled, splits


@flow(
    name="prepare",
    description="Run only the data stages of an experiment and report rows per step.",
    persist_result=False,
    on_completion=RELEASE_RUN_LOCKS,
    on_failure=RELEASE_RUN_LOCKS,
    on_crashed=RELEASE_RUN_LOCKS,
    on_cancellation=RELEASE_RUN_LOCKS,
)
def prepare(config: ExperimentConfig = ExperimentConfig(), run_id: RunId | None = None) -> dict:  # noqa: B008 - the UI form shows it
    storage = result_storage_task(config.result_storage_url())
    paths = start_run_task(config, run_id)
    raw, validated, subsampled, splits = prepare_data.with_options(result_storage=storage)(config, paths)
    return data_summary_task(paths, raw, validated, subsampled, splits)
