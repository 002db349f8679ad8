"""A tuning study in MLflow: the study as a parent run, each trial a nested run under it (MLflow's
``mlflow.parentRunId`` tag), pruned and failed trials included.

A study resumes when its command is run again (``flows.tune`` adds trials up to ``tune.n_trials``), so
its parent run is found again by the study's name and storage and reopened; its params (the study's
base config) are logged when it is created only, since MLflow refuses to change a param. Each trial is
logged once it is told to Optuna: its sampled params, its per-epoch metrics (step = epoch), the
objective (a complete trial's value), the epoch it was pruned after, or the error it failed with. A
trial already logged under the parent (a retried flow) is not logged twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from doughflow.tracking.mlflow_run import RUN_ID_TAG
from doughflow.tracking.naming import MAX_TAG_VALUE, epoch_metrics, finite_number, param_value, redact
from doughflow.tracking.store import TrackingError, client_for, experiment_id

STUDY_TAG = "doughflow.study"
STORAGE_TAG = "doughflow.study_storage"
TRIAL_TAG = "doughflow.trial"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a run under this parent
STATE_TAG = "optuna.state"


@dataclass
class TrialRecord:
    """One finished trial, as the study's nested run logs it."""

    number: int
    params: dict[str, Any]
    state: str  # complete | pruned | fail
    value: float | None = None
    pruned_after_epoch: int | None = None
    error: str | None = None
    run_id: str | None = None  # the trial's doughflow run folder
    epochs: list[dict] = field(default_factory=list)  # its history["epoch"]


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _guarded(what: str, uri: str, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except TrackingError:
        raise
    except Exception as error:  # MLflow raises MlflowException, requests' errors, OSError...
        raise TrackingError(f"MLflow tracking at {redact(uri)} failed to {what}: {redact(str(error))}") from None


def open_study_run(
    uri: str, experiment: str, study: str, storage: str, params: dict[str, str], tags: dict[str, str]
) -> str:
    """The study's parent run id: the one this study already has (reopened), or a new one."""
    return _guarded(
        f"open the run of study {study}", uri, _open_study_run, uri, experiment, study, storage, params, tags
    )


def _open_study_run(
    uri: str, experiment: str, study: str, storage: str, params: dict[str, str], tags: dict[str, str]
) -> str:
    from mlflow.entities import Param, RunStatus

    client = client_for(uri)
    experiment_key = experiment_id(client, experiment, uri)
    storage = redact(storage)
    found = client.search_runs(
        [experiment_key],
        filter_string=(f"tags.`{STUDY_TAG}` = '{_quoted(study)}' and tags.`{STORAGE_TAG}` = '{_quoted(storage)}'"),
    )
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        return run_id
    run = client.create_run(
        experiment_key, run_name=f"study {study}", tags={STUDY_TAG: study, STORAGE_TAG: storage[:MAX_TAG_VALUE], **tags}
    )
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
    return run.info.run_id


def log_trial(uri: str, parent_run_id: str, trial: TrialRecord) -> str:
    """The trial's nested run id (logged now, or found when it already was)."""
    return _guarded(f"log trial {trial.number}", uri, _log_trial, uri, parent_run_id, trial)


def _log_trial(uri: str, parent_run_id: str, trial: TrialRecord) -> str:
    from mlflow.entities import Metric, Param, RunStatus

    client = client_for(uri)
    parent = client.get_run(parent_run_id)
    experiment_key = parent.info.experiment_id
    found = client.search_runs(
        [experiment_key],
        filter_string=(f"tags.`{PARENT_TAG}` = '{parent_run_id}' and tags.`{TRIAL_TAG}` = '{trial.number}'"),
    )
    if found:
        return found[0].info.run_id
    tags = {
        PARENT_TAG: parent_run_id,
        TRIAL_TAG: str(trial.number),
        STATE_TAG: trial.state.upper(),
        STUDY_TAG: parent.data.tags.get(STUDY_TAG, ""),
    }
    if trial.run_id:
        tags[RUN_ID_TAG] = trial.run_id
    if trial.error:
        tags["error"] = redact(trial.error)[:MAX_TAG_VALUE]
    run = client.create_run(experiment_key, run_name=f"trial-{trial.number}", tags=tags)
    now = int(time.time() * 1000)
    metrics = [
        Metric(name, value, now, int(epoch["epoch"])) for epoch in trial.epochs for name, value in epoch_metrics(epoch)
    ]
    for name, value in (("objective", trial.value), ("pruned_after_epoch", trial.pruned_after_epoch)):
        if (number := finite_number(value)) is not None:
            metrics.append(Metric(name, number, now, 0))
    client.log_batch(
        run.info.run_id, metrics=metrics, params=[Param(key, param_value(value)) for key, value in trial.params.items()]
    )
    status = RunStatus.FAILED if trial.state == "fail" else RunStatus.FINISHED
    client.set_terminated(run.info.run_id, RunStatus.to_string(status))
    return run.info.run_id


def close_study_run(
    uri: str, parent_run_id: str, best: dict[str, Any], counts: dict[str, int], artifacts: list[str]
) -> None:
    """End the parent run with the study so far: best trial and value, trials per state, report files."""
    _guarded("close the study run", uri, _close_study_run, uri, parent_run_id, best, counts, artifacts)


def _close_study_run(
    uri: str, parent_run_id: str, best: dict[str, Any], counts: dict[str, int], artifacts: list[str]
) -> None:
    from mlflow.entities import Metric, RunStatus, RunTag

    client = client_for(uri)
    now = int(time.time() * 1000)
    metrics = [Metric(name, float(value), now, 0) for name, value in counts.items()]
    if (value := finite_number(best.get("value"))) is not None:
        metrics.append(Metric("best_objective", value, now, 0))
    tags = [RunTag("best_trial", str(best.get("trial")))]
    tags += [RunTag(f"best.{key}", param_value(value)[:MAX_TAG_VALUE]) for key, value in best.get("params", {}).items()]
    client.log_batch(parent_run_id, metrics=metrics, tags=tags)
    for path in artifacts:
        if Path(path).exists():
            client.log_artifact(parent_run_id, path)
    client.set_terminated(parent_run_id, RunStatus.to_string(RunStatus.FINISHED))
