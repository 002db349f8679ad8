"""The training pipeline: fetch -> validate -> dedup -> split -> train -> evaluate -> export ->
report -> package. ``python -m flows.train --config configs/pizza.yaml key=value ...``"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from doughflow.cli import run_flow_cli
from doughflow.config import ExperimentConfig
from doughflow.runs import RunPaths, new_run_id, run_summary
from tasks.dedup import dedup_task
from tasks.evaluate import evaluate_task
from tasks.export import export_task
from tasks.fetch import fetch_task
from tasks.package import package_task
from tasks.registry import record_task
from tasks.report import publish_report_task, report_task
from tasks.split import split_task
from tasks.train import train_task
from tasks.validate import validate_task


@flow(name="train", description="Train, evaluate, export and package a counting model from one experiment config.")
def train(config: ExperimentConfig = ExperimentConfig(), run_id: str | None = None) -> dict:
    started = time.time()
    paths = RunPaths(Path(config.artifacts_dir), run_id or new_run_id(config.name))
    raw = fetch_task(config, paths)
    validated = validate_task(config, paths, raw)
    deduped = dedup_task(config, paths, validated.manifest)
    splits = split_task(config, paths, deduped.manifest)
    trained = train_task(config, paths, splits)
    evaluated = evaluate_task(config, paths, splits, trained)
    exported = export_task(config, paths, splits, trained)
    report = report_task(config, paths, raw, validated, deduped, splits, trained, evaluated, exported)
    bundle = package_task(config, paths, raw, trained, evaluated, exported, report)
    publish_report_task(report, paths.run_id)
    summary = run_summary(paths, bundle, report, evaluated, trained, exported)
    record_task(config, paths, summary, started)
    return summary


if __name__ == "__main__":
    run_flow_cli(train, description=__doc__)
