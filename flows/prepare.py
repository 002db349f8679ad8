"""The data stages alone: fetch -> validate -> subsample -> split. ``flows.train`` runs the same
``prepare_data`` sub-flow. ``python -m flows.prepare --config configs/pizza.yaml key=value ...``"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from doughflow.caching import result_storage
from doughflow.cli import run_flow_cli
from doughflow.config import ExperimentConfig
from doughflow.runs import RunPaths, data_summary, new_run_id
from tasks.fetch import fetch_task
from tasks.split import split_task
from tasks.subsample import publish_subsample_task, subsample_task
from tasks.validate import validate_task


@flow(name="prepare-data", description="Fetch, validate, subsample (dedup and caps on Dask) and split.")
def prepare_data(config: ExperimentConfig, paths: RunPaths) -> tuple:
    raw = fetch_task(config, paths)
    validated = validate_task(config, paths, raw)
    subsampled = subsample_task(config, paths, validated.manifest)
    publish_subsample_task(subsampled, paths.run_id)
    splits = split_task(config, paths, subsampled.manifest)
    return raw, validated, subsampled, splits


@flow(name="prepare", description="Run only the data stages of an experiment and report rows per step.")
def prepare(config: ExperimentConfig = ExperimentConfig(), run_id: str | None = None) -> dict:
    paths = RunPaths(Path(config.artifacts_dir), run_id or new_run_id(config.name))
    storage = result_storage(config.result_storage_url())
    raw, validated, subsampled, splits = prepare_data.with_options(result_storage=storage)(config, paths)
    return data_summary(paths, raw, validated, subsampled, splits)


if __name__ == "__main__":
    run_flow_cli(prepare, description=__doc__)
