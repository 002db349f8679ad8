"""Tune an experiment with Optuna: every trial trains on the cached data stages, bad trials are
pruned from their per-epoch validation metric, the study is stored (SQLite by default) and resumed
by a rerun, and the best config is written as YAML beside a report.
``python -m flows.tune --config configs/pizza_tune.yaml key=value ...``"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from doughflow.caching import result_storage
from doughflow.cli import run_flow_cli
from doughflow.config import ExperimentConfig
from doughflow.runs import RunPaths
from doughflow.tuning.study import StudyRef, TrialPlan, trial_run_id
from flows.prepare import prepare_data
from tasks.tune import (ask_task, open_study_task, outcome_of, publish_tune_report_task, summary, tell_task,
                        train_trial_task, trial_config_task, trials_left_task, tune_report_task, write_best_task)


@flow(name="tune", description="Optuna study over config fields; each trial a sub-flow on the cached data stages.")
def tune(config: ExperimentConfig = ExperimentConfig()) -> dict:
    """Binds the result storage the config names (so trials share cached data stages), then runs the study."""
    return study.with_options(result_storage=result_storage(config.result_storage_url()))(config)


@flow(name="tune-study")
def study(config: ExperimentConfig) -> dict:
    started = time.monotonic()
    ref = open_study_task(config)
    for _ in range(trials_left_task(ref, config.tune.n_trials)):
        if config.tune.timeout_seconds and time.monotonic() - started > config.tune.timeout_seconds:
            break
        plan = ask_task(ref, config.tune)
        state = trial.with_options(flow_run_name=f"trial-{plan.number}")(config, ref, plan, return_state=True)
        tell_task(ref, plan, outcome_of(state))
    best = write_best_task(config, ref)
    report = tune_report_task(config, ref, best)
    publish_tune_report_task(report, ref)
    return summary(ref, best, report)


@flow(name="tune-trial")
def trial(config: ExperimentConfig, study_ref: StudyRef, plan: TrialPlan) -> dict:
    trial_cfg = trial_config_task(config, plan)
    paths = RunPaths(Path(trial_cfg.artifacts_dir), trial_run_id(study_ref, plan))
    raw, validated, subsampled, splits = prepare_data(trial_cfg, paths)
    return train_trial_task(trial_cfg, paths, splits, study_ref, plan)


if __name__ == "__main__":
    run_flow_cli(tune, description=__doc__)
