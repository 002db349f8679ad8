"""The training pipeline: fetch -> validate -> subsample -> split (the prepare-data sub-flow) -> train -> evaluate -> export ->
report -> package. ``python -m flows.train --config configs/pizza.yaml key=value ...``"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from doughflow.cli import run_flow_cli
from doughflow.config import ExperimentConfig
from doughflow.runs import RunPaths, new_run_id, run_summary
from flows.prepare import prepare_data
from tasks.evaluate import evaluate_task
from tasks.export import export_task
from tasks.package import package_task
from tasks.report import publish_report_task, report_task
from tasks.train import train_task


@flow(name="train", description="Train, evaluate, export and package a counting model from one experiment config.")
def train(config: ExperimentConfig = ExperimentConfig(), run_id: str | None = None) -> dict:
    paths = RunPaths(Path(config.artifacts_dir), run_id or new_run_id(config.name))
    raw, validated, deduped, splits = prepare_data(config, paths)
    trained = train_task(config, paths, splits)
    evaluated = evaluate_task(config, paths, splits, trained)
    exported = export_task(config, paths, splits, trained)
    report = report_task(config, paths, raw, validated, deduped, splits, trained, evaluated, exported)
    bundle = package_task(config, paths, raw, trained, evaluated, exported, report)
    publish_report_task(report, paths.run_id)
    return run_summary(paths, bundle, report, evaluated, trained, exported)


if __name__ == "__main__":
    run_flow_cli(train, description=__doc__)
