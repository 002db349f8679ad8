"""The Optuna study: where it is stored, how it samples and prunes, and what a finished trial says.

The study lives in an RDB storage (SQLite beside the artifacts by default, any SQLAlchemy URL such
as PostgreSQL when configured), so a rerun of the same command loads it and adds trials until the
study holds ``tune.n_trials`` finished ones. Only plain values (``StudyRef``, ``TrialPlan``) cross
Prefect task and flow boundaries; each side reopens the study from its storage URL.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna

from doughflow.config import ExperimentConfig, TuneConfig

log = logging.getLogger(__name__)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


@dataclass(frozen=True)
class StudyRef:
    storage: str
    name: str
    direction: Literal["maximize", "minimize"]
    metric: str


@dataclass(frozen=True)
class TrialPlan:
    """One asked trial: its identity in the study and the values sampled for it."""

    number: int
    trial_id: int
    params: dict[str, Any] = field(default_factory=dict)


def storage_url(config: ExperimentConfig) -> str:
    """The configured URL, or SQLite at <artifacts_dir>/tune/<study>.sqlite3 (folder created)."""
    if config.tune.storage:
        return config.tune.storage
    path = Path(config.artifacts_dir).resolve() / "tune" / f"{config.tune.study(config.name)}.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_pruner(tune: TuneConfig) -> optuna.pruners.BasePruner:
    if tune.pruner.kind == "none":
        return optuna.pruners.NopPruner()
    # Steps are epochs counted from 1 and Optuna prunes from step == n_warmup_steps on: +1 protects
    # exactly the first n_warmup_steps epochs.
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune.pruner.n_startup_trials,
        n_warmup_steps=tune.pruner.n_warmup_steps + 1,
        interval_steps=tune.pruner.interval_steps,
    )


def load_study(ref: StudyRef, tune: TuneConfig | None = None) -> optuna.Study:
    """Open (or create) the study; sampler and pruner are not stored, so every opener passes them."""
    tune = tune or TuneConfig(metric=ref.metric, direction=ref.direction)
    storage = optuna.storages.RDBStorage(ref.storage, engine_kwargs=_engine_kwargs(ref.storage))
    sampler, pruner = optuna.samplers.TPESampler(seed=tune.seed), make_pruner(tune)
    try:  # load first: create_study(load_if_exists=True) logs a line on every reopen
        return optuna.load_study(study_name=ref.name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        return optuna.create_study(
            storage=storage,
            study_name=ref.name,
            direction=ref.direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )


def _engine_kwargs(url: str) -> dict:
    # The pruning monitor writes from a second thread while the flow waits; give SQLite time to lock.
    return {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}


def open_study(config: ExperimentConfig) -> StudyRef:
    """Create or resume the configured study, enqueue the configured baseline trials once, and
    refuse a study created for the other direction."""
    tune = config.tune
    ref = StudyRef(storage_url(config), tune.study(config.name), tune.direction, tune.metric)
    study = load_study(ref, tune)
    stored = study.direction.name.lower()
    if stored != tune.direction:
        raise ValueError(
            f"study {ref.name!r} in {ref.storage} was created to {stored}; tune.direction is "
            f"{tune.direction}: use another tune.study_name"
        )
    for params in tune.enqueue:
        study.enqueue_trial(params, skip_if_exists=True)
    return ref


def trials_left(ref: StudyRef, n_trials: int) -> int:
    """Trials still to run so that the study holds ``n_trials`` finished ones (a rerun resumes)."""
    study = load_study(ref)
    return max(0, n_trials - len(study.get_trials(deepcopy=False, states=FINISHED)))


@dataclass(frozen=True)
class TrialBudget:
    """What this invocation may still run: trials until the study holds ``tune.n_trials`` finished
    ones, and no trial started after ``deadline`` (``time.time()``; None: no limit)."""

    trials: int
    deadline: float | None


def trial_budget(ref: StudyRef, tune: TuneConfig) -> TrialBudget:
    deadline = time.time() + tune.timeout_seconds if tune.timeout_seconds else None
    return TrialBudget(trials_left(ref, tune.n_trials), deadline)


def ask_within(ref: StudyRef, tune: TuneConfig, budget: TrialBudget) -> TrialPlan | None:
    """The next trial, or None once the budget's deadline has passed (a running trial is never cut)."""
    if budget.deadline is not None and time.time() > budget.deadline:
        log.info("tune.timeout_seconds reached: no further trials in this invocation")
        return None
    return ask(ref, tune)


def ask(ref: StudyRef, tune: TuneConfig) -> TrialPlan:
    from doughflow.tuning.space import suggest

    study = load_study(ref, tune)
    # Every ask reopens the study with a new sampler: seeded alike, each would repeat the same first
    # random draw. Offsetting the seed by the trials so far keeps draws reproducible and distinct.
    study.sampler = optuna.samplers.TPESampler(seed=tune.seed + len(study.get_trials(deepcopy=False)))
    trial = study.ask()
    # The storage's trial id (not the number) is what reopening a trial needs; Optuna keeps it private.
    return TrialPlan(trial.number, trial._trial_id, suggest(trial, tune.search_space))


def trial_handle(ref: StudyRef, tune: TuneConfig, plan: TrialPlan) -> optuna.Trial:
    """The asked trial, reopened from storage (report/should_prune work from any process)."""
    return optuna.trial.Trial(load_study(ref, tune), plan.trial_id)


def tell(ref: StudyRef, plan: TrialPlan, outcome: dict[str, Any]) -> str:
    """Record the trial's end: its value, PRUNED, or FAIL. Returns the state's name."""
    study = load_study(ref)
    state = outcome.get("state")
    value = outcome.get("value")
    if state == "complete" and (value is None or not math.isfinite(value)):
        outcome = {**outcome, "state": "fail", "error": f"{ref.metric} is {value} (no validation rows?)"}
        state = "fail"
    handle = optuna.trial.Trial(study, plan.trial_id)
    for key in ("run_id", "error", "pruned_after_epoch"):
        if outcome.get(key) is not None:
            handle.set_user_attr(key, outcome[key])
    if state == "complete":
        study.tell(plan.number, value)
    elif state == "pruned":
        study.tell(plan.number, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(plan.number, state=optuna.trial.TrialState.FAIL)
        state = "fail"  # an outcome without a known state is told as a failure: say so
    return state


def trial_run_id(ref: StudyRef, plan: TrialPlan, flow_run_id: str | None = None) -> str:
    """<study>-trial0003-<flow run>: readable, and unique even when a study is deleted and restarted
    (a reused folder would resume the old trial's checkpoints)."""
    suffix = (flow_run_id or "").replace("-", "")[:8] or uuid.uuid4().hex[:8]
    return f"{ref.name}-trial{plan.number:04d}-{suffix}"
