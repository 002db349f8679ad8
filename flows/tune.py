"""Tune an experiment with Optuna: every trial trains on the cached data stages, bad trials are
pruned from their per-epoch validation metric, the study is stored (SQLite by default) and resumed
by a rerun, and the best config is written as YAML beside a report. With MLflow tracking on, the study
is a parent run and each trial a nested run under it.
``python -m flows.tune [--config FILE] [key.path=value ...]``"""

from __future__ import annotations

if __name__ == "__main__":  # parse arguments before Prefect and torch load: --help and typos answer at once
    from doughflow.cli.flow import main

    main("flows.tune:tune", __doc__)

from prefect import flow

from doughflow.config import ExperimentConfig
from doughflow.orchestration.results import RESULT_SERIALIZER
from doughflow.tuning.study import StudyRef, TrialPlan
from flows.prepare import prepare_data
from tasks.run import result_storage_task
from tasks.tune import (
    ask_task,
    finish_study_tracking_task,
    open_study_task,
    outcome_of,
    publish_tune_report_task,
    start_trial_task,
    summary_task,
    tell_task,
    track_study_task,
    track_trial_task,
    train_trial_task,
    trial_budget_task,
    trial_config_task,
    tune_report_task,
    write_best_task,
)


@flow(
    name="tune",
    description="Optuna study over config fields; each trial a sub-flow on the cached data stages.",
    persist_result=False,
)
def tune(config: ExperimentConfig = ExperimentConfig()) -> dict:  # noqa: B008 - the UI form shows it
    """Binds the result storage the config names (so trials share cached data stages), then runs the study."""
    storage = result_storage_task(config.result_storage_url())
    return study.with_options(result_storage=storage)(config)


@flow(name="tune-study", result_serializer=RESULT_SERIALIZER)
def study(config: ExperimentConfig) -> dict:
    ref = open_study_task(config)
    tracking = track_study_task(config, ref)
    budget = trial_budget_task(ref, config.tune)
    for _ in range(budget.trials):
        plan = ask_task(ref, config.tune, budget)
        if plan is None:  # tune.timeout_seconds has passed
            break
        state = trial.with_options(flow_run_name=f"trial-{plan.number}")(config, ref, plan, return_state=True)
        outcome = outcome_of(state)
        told = tell_task(ref, plan, outcome)
        track_trial_task(config, plan, outcome, told, tracking)
    best = write_best_task(config, ref)
    report = tune_report_task(config, ref, best)
    publish_tune_report_task(report, ref)
    finish_study_tracking_task(config, ref, best, report, tracking)
    return summary_task(ref, best, report)


@flow(name="tune-trial", result_serializer=RESULT_SERIALIZER)
def trial(config: ExperimentConfig, study_ref: StudyRef, plan: TrialPlan) -> dict:
    trial_cfg = trial_config_task(config, plan)
    paths = start_trial_task(trial_cfg, study_ref, plan)
    raw, validated, subsampled, splits = prepare_data(trial_cfg, paths)
    return train_trial_task(trial_cfg, paths, splits, study_ref, plan)
