"""Tuning tasks: open the study, ask a trial, train it under the pruning monitor, tell the result,
write the best config and the study report. Plain functions in doughflow.tuning do the work."""

from __future__ import annotations

from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.data.split import SplitResult
from doughflow.runs import RunPaths
from doughflow.tuning import report as tune_report
from doughflow.tuning.prune import PruneMonitor, optuna_judge
from doughflow.tuning.space import apply_params
from doughflow.tuning.study import StudyRef, TrialPlan, ask, load_study, open_study, tell, trial_handle, trials_left
from doughflow.training.job import TrainResult
from tasks.common import compute_task
from tasks.train import run_train_job, train_job

CONTROL_DIR = "tune-control"


def trial_config(config: ExperimentConfig, plan: TrialPlan) -> ExperimentConfig:
    return apply_params(config, plan.params, source=f"trial {plan.number}")


def trial_value(trained: TrainResult, metric: str) -> float | None:
    """The metric at the epoch the trainer kept (what ``flows.train`` would evaluate and ship)."""
    for record in trained.history.get("epoch", []):
        if record["epoch"] == trained.best_epoch:
            return record.get(metric)
    return None


def train_trial(config: ExperimentConfig, paths: RunPaths, splits: SplitResult, study: StudyRef,
                plan: TrialPlan) -> dict:
    """Train with every epoch judged by the trial's pruner. Deliberately not the cached ``train``
    stage: a pruned model must never be served to a later run under that stage's cache key."""
    job = train_job(config, paths, splits)
    job.control_dir = str(Path(job.out_dir) / CONTROL_DIR)
    judge = optuna_judge(trial_handle(study, config.tune, plan))
    with PruneMonitor(job.control_dir, config.tune.metric, judge, config.train.epochs) as monitor:
        trained = run_train_job(job, config, paths)
    if monitor.pruned_after is not None:
        return {"state": "pruned", "pruned_after_epoch": monitor.pruned_after, "run_id": paths.run_id,
                "values": monitor.values}
    return {"state": "complete", "value": trial_value(trained, config.tune.metric), "run_id": paths.run_id,
            "values": monitor.values, "model": trained.model_path}


def outcome_of(state) -> dict:
    """A trial sub-flow's final Prefect state as the outcome Optuna is told (a failure is FAIL)."""
    if state.is_completed():
        return state.result()
    return {"state": "fail", "error": (state.message or state.name)[:500]}


def write_best(config: ExperimentConfig, study: StudyRef) -> tune_report.BestConfig:
    return tune_report.write_best_config(config, load_study(study), study.metric, tune_report.study_dir(config, study))


def build_report(config: ExperimentConfig, study: StudyRef, best: tune_report.BestConfig):
    return tune_report.build_tune_report(config, load_study(study), study, best, tune_report.study_dir(config, study))


def publish_report(report, study: StudyRef) -> None:
    """Prefect markdown artifact; figures are files beside the report, so the artifact says where."""
    from prefect.artifacts import create_markdown_artifact

    folder = Path(report.markdown).parent.resolve()
    text = Path(report.markdown).read_text()
    for figure in report.figures:
        text = text.replace(f"]({figure})", f"]({folder / figure})")
    key = "".join(c if c.isalnum() else "-" for c in study.name.lower())[:90]
    create_markdown_artifact(key=f"tune-{key}", markdown=text, description=f"doughflow tuning study {study.name}")


def summary(study: StudyRef, best: tune_report.BestConfig, report) -> dict:
    """The JSON line ``flows.tune`` ends with."""
    counts = tune_report.counts(load_study(study))
    return {"study": study.name, "storage": study.storage, "metric": study.metric, "best_value": best.value,
            "best_trial": best.trial, "best_params": best.params, "best_config": best.path,
            "report": report.html, **counts}


open_study_task = compute_task(name="tune-open-study")(open_study)
trials_left_task = compute_task(name="tune-trials-left")(trials_left)
ask_task = compute_task(name="tune-ask")(ask)
trial_config_task = compute_task(name="tune-trial-config")(trial_config)
train_trial_task = compute_task(name="tune-train")(train_trial)
tell_task = compute_task(name="tune-tell")(tell)
write_best_task = compute_task(name="tune-best-config")(write_best)
tune_report_task = compute_task(name="tune-report")(build_report)
publish_tune_report_task = compute_task(name="tune-publish-report")(publish_report)
