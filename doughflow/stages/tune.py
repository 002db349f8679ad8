"""Tuning stages: a trial's config and folder, its training under the pruning monitor, the best config
and the study report. Opening, asking and telling the study are plain functions of doughflow.tuning.study."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.data.split import SplitResult
from doughflow.orchestration.artifacts import experiment_key, publish_markdown
from doughflow.orchestration.runtime import flow_run_id, flow_run_ui_url, root_flow_run_id
from doughflow.reporting.report import ReportFiles, inline_figures
from doughflow.runs import RunPaths
from doughflow.stages.train import run_train_job, train_job
from doughflow.tracking.mlflow_study import TrialRecord, close_study_run, log_trial, open_study_run
from doughflow.tracking.naming import flatten_params
from doughflow.tracking.store import TrackingError
from doughflow.training.job import TrainResult
from doughflow.tuning import report as tune_report
from doughflow.tuning.prune import PruneMonitor, optuna_judge
from doughflow.tuning.space import apply_params
from doughflow.tuning.study import StudyRef, TrialPlan, load_study, trial_handle, trial_run_id

CONTROL_DIR = "tune-control"

log = logging.getLogger(__name__)


def trial_config(config: ExperimentConfig, plan: TrialPlan) -> ExperimentConfig:
    return apply_params(config, plan.params, source=f"trial {plan.number}")


def trial_value(trained: TrainResult, metric: str) -> float | None:
    """The metric at the epoch the trainer kept (what ``flows.train`` would evaluate and ship)."""
    for record in trained.history.get("epoch", []):
        if record["epoch"] == trained.best_epoch:
            return record.get(metric)
    return None


def train_trial(
    config: ExperimentConfig, paths: RunPaths, splits: SplitResult, study: StudyRef, plan: TrialPlan
) -> dict:
    """Train with every epoch judged by the trial's pruner. Deliberately not the cached ``train``
    stage: a pruned model must never be served to a later run under that stage's cache key."""
    job = train_job(config, paths, splits)
    job.control_dir = str(Path(job.out_dir) / CONTROL_DIR)
    judge = optuna_judge(trial_handle(study, config.tune, plan))
    with PruneMonitor(job.control_dir, config.tune.metric, judge, config.train.epochs) as monitor:
        trained = run_train_job(job, config, paths)
    if monitor.pruned_after is not None:
        return {
            "state": "pruned",
            "pruned_after_epoch": monitor.pruned_after,
            "run_id": paths.run_id,
            "values": monitor.values,
        }
    return {
        "state": "complete",
        "value": trial_value(trained, config.tune.metric),
        "run_id": paths.run_id,
        "values": monitor.values,
        "model": trained.model_path,
    }


def start_trial(config: ExperimentConfig, study: StudyRef, plan: TrialPlan) -> RunPaths:
    """The trial's run folder: <study>-trial0003-<its flow run>."""
    return RunPaths(Path(config.artifacts_dir), trial_run_id(study, plan, flow_run_id()), time.time())


def write_best(config: ExperimentConfig, study: StudyRef) -> tune_report.BestConfig:
    return tune_report.write_best_config(config, load_study(study), study.metric, tune_report.study_dir(config, study))


def build_report(config: ExperimentConfig, study: StudyRef, best: tune_report.BestConfig) -> ReportFiles:
    return tune_report.build_tune_report(config, load_study(study), study, best, tune_report.study_dir(config, study))


def publish_report(report: ReportFiles, study: StudyRef) -> None:
    """Prefect markdown artifact under the study's stable key (``pizza-tune-report``), figures embedded
    as data URIs so the UI shows them (a file path renders as a broken image there)."""
    text = inline_figures(Path(report.markdown).read_text(), Path(report.markdown).parent)
    publish_markdown(experiment_key(study.name, "tune-report"), text, f"doughflow tuning study {study.name}")


def summary(study: StudyRef, best: tune_report.BestConfig, report: ReportFiles) -> dict:
    """The JSON line ``flows.tune`` ends with."""
    counts = tune_report.counts(load_study(study))
    return {
        "study": study.name,
        "storage": study.storage,
        "metric": study.metric,
        "best_value": best.value,
        "best_trial": best.trial,
        "best_params": best.params,
        "best_config": best.path,
        "report": report.html,
        **counts,
    }


# MLflow: the study as a parent run, each trial nested under it (doughflow/tracking/mlflow_study.py).
# Each returns None, without importing MLflow, when tracking.mlflow.enabled is off. As for train runs,
# MLflow failing is logged, not raised: the study lives in its Optuna storage whatever MLflow says.


def track_study(config: ExperimentConfig, study: StudyRef) -> str | None:
    """The study's parent run in MLflow (reopened when the study resumes)."""
    if not config.tracking.mlflow.enabled:
        return None
    uri = config.mlflow_uri()
    tags = {
        "doughflow.experiment": config.name,
        "doughflow.config_hash": config.config_hash(),
        "optuna.direction": study.direction,
        "optuna.metric": study.metric,
    }
    if root_flow_run_id():
        tags["prefect.flow_run_id"] = root_flow_run_id() or ""
    if flow_run_ui_url():
        tags["prefect.flow_run_ui_url"] = flow_run_ui_url() or ""
    try:
        return open_study_run(
            uri,
            config.tracking.mlflow.experiment or config.name,
            study.name,
            study.storage,
            flatten_params(config.model_dump(mode="json")),
            tags,
        )
    except TrackingError as error:
        log.error("%s; the study itself is complete in its Optuna storage", error)
        return None


def track_trial(
    config: ExperimentConfig, plan: TrialPlan, outcome: dict, state: str, parent_run_id: str | None
) -> str | None:
    """One told trial as a nested run: its params, per-epoch metrics (from its history), and the state
    Optuna was told (``state``: a complete trial without a finite value was told as failed)."""
    if parent_run_id is None:
        return None
    epochs: list[dict] = []
    if outcome.get("run_id"):
        history = Path(config.artifacts_dir) / str(outcome["run_id"]) / "train" / "history.json"
        if history.exists():
            epochs = json.loads(history.read_text()).get("epoch", [])
    record = TrialRecord(
        number=plan.number,
        params=plan.params,
        state=state,
        value=outcome.get("value") if state == "complete" else None,
        pruned_after_epoch=outcome.get("pruned_after_epoch"),
        error=outcome.get("error"),
        run_id=outcome.get("run_id"),
        epochs=epochs,
    )
    try:
        return log_trial(config.mlflow_uri(), parent_run_id, record)
    except TrackingError as error:
        log.error("%s", error)
        return None


def finish_study_tracking(
    config: ExperimentConfig,
    study: StudyRef,
    best: tune_report.BestConfig,
    report: ReportFiles,
    parent_run_id: str | None,
) -> None:
    """End the parent run: best trial, value and params, trials per state, the report and best config."""
    if parent_run_id is None:
        return
    best_dict = {"trial": best.trial, "value": best.value, "params": best.params}
    artifacts = [report.html, report.markdown, *([best.path] if best.path else [])]
    try:
        close_study_run(config.mlflow_uri(), parent_run_id, best_dict, tune_report.counts(load_study(study)), artifacts)
    except TrackingError as error:
        log.error("%s", error)
