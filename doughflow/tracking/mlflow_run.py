"""One finished train run as an MLflow run, its ONNX model as a logged model, and a released bundle as
a version of a registered model.

What is logged is gathered by the track stage into :class:`RunRecord` (plain values), so this module
only speaks MLflow. The run is logged once the pipeline has its release decision: params and metrics
go in one batch (MLflow splits it at 100 params, 1,000 metrics), artifacts as files; about fifteen
requests a run, each a round trip to a server or a transaction (an fsync) in a SQLite store. The ONNX model is saved with its pip requirements given (``onnx``, ``onnxruntime`` at the
installed versions; see doughflow/tracking/store.py).

A rerun of the same doughflow run (a Prefect retry, a resumed run id) finds the MLflow run by its
``doughflow.run_id`` tag: a finished one is kept as it is, an unfinished one (a crash mid-logging) is
deleted and logged again, so one doughflow run is one MLflow run.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from doughflow.tracking.naming import MAX_TAG_VALUE, epoch_metrics, metric_name, redact, split_metrics
from doughflow.tracking.store import TrackingError, client_for, experiment_id, how_to_look, is_server, onnx_requirements

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run

RUN_ID_TAG = "doughflow.run_id"
RELEASE_TAG = "release_status"
REVIEW_TAG = "review"
MODEL_NAME = "model"  # the logged model's name within its run


@dataclass
class RunRecord:
    """Everything one train run logs, as plain values (see doughflow/stages/track.py)."""

    run_id: str
    experiment: str
    started_at: float  # time.time()
    params: dict[str, str]
    tags: dict[str, str]
    epochs: list[dict] = field(default_factory=list)  # history["epoch"]: step = the epoch number
    final: dict[str, dict] = field(default_factory=dict)  # split -> metrics (metrics.json)
    extra_metrics: dict[str, float] = field(default_factory=dict)  # headline and per-format figures
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)  # (file or folder, artifact folder)
    onnx_path: str | None = None
    register_as: str | None = None  # a registered model's name when the bundle was released
    version_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackedRun:
    """Where the run went: ids in the MLflow store, and how a person looks at it."""

    uri: str  # redacted
    experiment_id: str
    run_id: str
    model_id: str | None
    registered_model: str | None
    model_version: str | None
    look: str  # the run's page, or the mlflow ui command for a local store
    reused: bool = False  # the doughflow run was already tracked in full; nothing new was logged


def find_run(client: MlflowClient, experiment: str, doughflow_run_id: str) -> list:
    """The MLflow runs (not deleted) tagged with this doughflow run id."""
    return list(client.search_runs([experiment], filter_string=f"tags.`{RUN_ID_TAG}` = '{_quoted(doughflow_run_id)}'"))


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def log_train_run(uri: str, record: RunRecord) -> TrackedRun:
    """Log ``record`` at ``uri``; raises TrackingError naming the (redacted) URI when MLflow fails."""
    try:
        return _log(uri, record)
    except TrackingError:
        raise
    except Exception as error:  # MLflow raises MlflowException, requests' errors, OSError...
        raise TrackingError(
            f"MLflow tracking at {redact(uri)} failed for run {record.run_id}: {redact(str(error))}"
        ) from None


def _log(uri: str, record: RunRecord) -> TrackedRun:
    from mlflow.entities import Metric, Param, RunStatus

    client = client_for(uri)
    experiment = experiment_id(client, record.experiment, uri)
    for earlier in find_run(client, experiment, record.run_id):
        if earlier.info.status == RunStatus.to_string(RunStatus.FINISHED):
            return _already_tracked(client, uri, experiment, earlier)
        client.delete_run(earlier.info.run_id)
    tags = {RUN_ID_TAG: record.run_id, **record.tags}
    run = client.create_run(
        experiment,
        start_time=int(record.started_at * 1000),
        run_name=record.run_id,
        tags={key: value[:MAX_TAG_VALUE] for key, value in tags.items()},
    )
    mlflow_run = run.info.run_id
    model_id = _log_onnx_model(client, experiment, mlflow_run, record, record.onnx_path) if record.onnx_path else None
    now = int(time.time() * 1000)
    metrics: list[Metric] = [
        Metric(name, value, now, int(epoch["epoch"])) for epoch in record.epochs for name, value in epoch_metrics(epoch)
    ]
    metrics += [
        Metric(name, value, now, 0, model_id=model_id)
        for split, values in record.final.items()
        for name, value in split_metrics(split, values)
    ]
    metrics += [
        Metric(metric_name(name), value, now, 0, model_id=model_id) for name, value in record.extra_metrics.items()
    ]
    client.log_batch(mlflow_run, metrics=metrics, params=[Param(k, v) for k, v in record.params.items()])
    for local, folder in record.artifacts:
        path = Path(local)
        if path.is_dir():
            client.log_artifacts(mlflow_run, str(path), folder)
        elif path.exists():
            client.log_artifact(mlflow_run, str(path), folder)
    registered, model_version = None, None
    if record.register_as and model_id:
        registered = record.register_as
        model_version = _register(client, registered, model_id, mlflow_run, record, uri, experiment)
    client.set_terminated(mlflow_run, RunStatus.to_string(RunStatus.FINISHED))
    return TrackedRun(
        uri=redact(uri),
        experiment_id=experiment,
        run_id=mlflow_run,
        model_id=model_id,
        registered_model=registered,
        model_version=model_version,
        look=how_to_look(uri, experiment, mlflow_run),
    )


def _already_tracked(client: MlflowClient, uri: str, experiment: str, run: Run) -> TrackedRun:
    versions = list(client.search_model_versions(f"run_id = '{run.info.run_id}'"))
    outputs = run.outputs.model_outputs if run.outputs else []
    return TrackedRun(
        uri=redact(uri),
        experiment_id=experiment,
        run_id=run.info.run_id,
        model_id=outputs[0].model_id if outputs else None,
        registered_model=versions[0].name if versions else None,
        model_version=str(versions[0].version) if versions else None,
        look=how_to_look(uri, experiment, run.info.run_id),
        reused=True,
    )


def _log_onnx_model(client: MlflowClient, experiment: str, mlflow_run: str, record: RunRecord, onnx_path: str) -> str:
    """The ONNX file as an MLflow logged model (flavor ``onnx``: ``mlflow.pyfunc.load_model`` serves it),
    an output of the run."""
    import mlflow.onnx
    import onnx
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    model = onnx.load(onnx_path)
    logged = client.create_logged_model(
        experiment, name=MODEL_NAME, source_run_id=mlflow_run, model_type="onnx", tags={RUN_ID_TAG: record.run_id}
    )
    try:
        with tempfile.TemporaryDirectory(prefix="doughflow-mlflow-") as scratch:
            folder = Path(scratch) / MODEL_NAME
            mlflow.onnx.save_model(
                model,
                str(folder),
                save_as_external_data=False,
                pip_requirements=onnx_requirements(),
                metadata={RUN_ID_TAG: record.run_id},
            )
            client.log_model_artifacts(logged.model_id, str(folder))
    except Exception:
        client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    client.log_outputs(mlflow_run, [LoggedModelOutput(logged.model_id, step=0)])
    return logged.model_id


def _register(
    client: MlflowClient, name: str, model_id: str, mlflow_run: str, record: RunRecord, uri: str, experiment: str
) -> str:
    """A new version of registered model ``name`` (created on first use) from the logged model."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description=f"doughflow experiment {record.experiment}: released bundles"
            )
        except MlflowException:
            client.get_registered_model(name)  # created meanwhile by another run; anything else raises here
    # A server resolves models:/<id> in its own store; in-process, MLflow would look it up through the
    # process-wide tracking URI (see doughflow/tracking/store.py), so the files' location is given instead.
    source = f"models:/{model_id}" if is_server(uri) else client.get_logged_model(model_id).artifact_location
    link = how_to_look(uri, experiment, mlflow_run) if is_server(uri) else None
    created = client.create_model_version(
        name,
        source=source,
        run_id=mlflow_run,
        model_id=model_id,
        run_link=link,
        tags={RUN_ID_TAG: record.run_id, **record.version_tags},
        description=f"doughflow run {record.run_id}",
    )
    return str(created.version)


def set_review_state(uri: str, experiment: str, doughflow_run_id: str, review: dict) -> list[str]:
    """Tag the run and every registered version from it with the human review's outcome (``approved`` /
    ``not approved``); returns the versions tagged as ``name/version``. A run never tracked tags nothing."""
    try:
        client = client_for(uri)
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        tagged = []
        for run in find_run(client, str(found.experiment_id), doughflow_run_id):
            client.set_tag(run.info.run_id, REVIEW_TAG, review["status"])
            for mv in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
                client.set_model_version_tag(mv.name, str(mv.version), REVIEW_TAG, review["status"])
                share = review.get("figures", {}).get("share_correct")
                if share is not None:
                    client.set_model_version_tag(mv.name, str(mv.version), "review_share_correct", f"{share:.4f}")
                tagged.append(f"{mv.name}/{mv.version}")
        return tagged
    except Exception as error:
        raise TrackingError(
            f"MLflow at {redact(uri)}: could not set the review state of run {doughflow_run_id}: {redact(str(error))}"
        ) from None
