"""Tuning tasks: open the study, plan and ask trials, train one under the pruning monitor, tell the
result, write the best config and the study report."""

from typing import Any

from prefect.states import State

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.tune import (
    build_report,
    finish_study_tracking,
    publish_report,
    start_trial,
    summary,
    track_study,
    track_trial,
    train_trial,
    trial_config,
    write_best,
)
from doughflow.tuning.study import ask_within, open_study, tell, trial_budget


def outcome_of(state: State) -> dict[str, Any]:
    """A trial sub-flow's final Prefect state as the outcome Optuna is told (a failure is FAIL)."""
    if state.is_completed():
        return state.result()
    return {"state": "fail", "error": (state.message or state.name)[:500]}


open_study_task = compute_task(name="tune-open-study")(open_study)
trial_budget_task = compute_task(name="tune-trial-budget")(trial_budget)
ask_task = compute_task(name="tune-ask")(ask_within)
trial_config_task = compute_task(name="tune-trial-config")(trial_config)
start_trial_task = compute_task(name="tune-start-trial")(start_trial)
train_trial_task = compute_task(name="tune-train")(train_trial)
tell_task = compute_task(name="tune-tell")(tell)
write_best_task = compute_task(name="tune-best-config")(write_best)
tune_report_task = compute_task(name="tune-report")(build_report)
publish_tune_report_task = compute_task(name="tune-publish-report")(publish_report)
summary_task = compute_task(name="tune-summary")(summary)
# MLflow: its client retries its own requests; a failure is logged, not raised (doughflow/stages/tune.py).
track_study_task = compute_task(name="tune-track-study")(track_study)
track_trial_task = compute_task(name="tune-track-trial")(track_trial)
finish_study_tracking_task = compute_task(name="tune-track-best")(finish_study_tracking)
