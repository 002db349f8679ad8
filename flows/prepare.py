"""The data stages alone: fetch -> validate -> subsample -> split. ``flows.train`` runs the same
``prepare_data`` sub-flow. ``python -m flows.prepare --config configs/pizza.yaml key=value ...``"""

from __future__ import annotations

from prefect import flow

from doughflow.config import ExperimentConfig
from doughflow.data.dedup.subsample import SubsampleResult
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SplitResult
from doughflow.data.validate import ValidationResult
from doughflow.runs import RunPaths
from tasks.fetch import fetch_task
from tasks.run import data_summary_task, result_storage_task, start_run_task
from tasks.split import split_task
from tasks.subsample import publish_subsample_task, subsample_task
from tasks.validate import validate_task


@flow(name="prepare-data", description="Fetch, validate, subsample (dedup and caps on Dask) and split.")
def prepare_data(config: ExperimentConfig, paths: RunPaths) -> tuple[DataManifest, ValidationResult, SubsampleResult, SplitResult]:
    raw = fetch_task(config, paths)
    validated = validate_task(config, paths, raw)
    subsampled = subsample_task(config, paths, validated.manifest)
    publish_subsample_task(subsampled, paths.run_id)
    splits = split_task(config, paths, subsampled.manifest)
    return raw, validated, subsampled, splits


@flow(name="prepare", description="Run only the data stages of an experiment and report rows per step.")
def prepare(config: ExperimentConfig = ExperimentConfig(), run_id: str | None = None) -> dict:
    storage = result_storage_task(config.result_storage_url())
    paths = start_run_task(config, run_id)
    raw, validated, subsampled, splits = prepare_data.with_options(result_storage=storage)(config, paths)
    return data_summary_task(paths, raw, validated, subsampled, splits)


if __name__ == "__main__":
    from doughflow.cli.flow import run_flow_cli

    run_flow_cli(prepare, description=__doc__, trains=False)
