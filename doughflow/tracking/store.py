"""The MLflow store a config names: a client bound to its URI, the experiment runs go into, and how a
person looks at them.

Every call takes the URI explicitly (an ``MlflowClient`` per use) rather than MLflow's process-wide
``mlflow.set_tracking_uri``: a Prefect worker runs flows of many experiments in one process. The one
place MLflow 3.18 still reads the global URI is registering a version from a ``models:/<id>`` URI
against a database store, so versions are registered from the logged model's artifact location.

A database URI (``sqlite:///...``) is used in-process, without a server; its experiment keeps its
artifacts beside the database (MLflow's default would be ``./mlruns`` under whatever folder the
process started in). Against a server (``http(s)://``) the server places artifacts.

Opening a store costs more than logging to it: on this machine ``import mlflow`` takes 2.5 s of CPU,
a SQLite store's first query 1.4 s more (SQLAlchemy, schema check), and the first ONNX model saved
more again (see :func:`_save_a_tiny_onnx_model`), against 0.6 s of CPU to log a whole run. :func:`warm_up` does the first two on a background thread when a run starts, so by the time the
track stage runs (minutes later, after training) its client is ready; a server that cannot be reached
is reported then too, not only at the end.

MLflow 3 reports usage to its developers unless told not to; doughflow runs on machines that may not
reach the internet and must not send anything it was not asked to, so ``MLFLOW_DISABLE_TELEMETRY``
defaults to true here (set it to false to allow it). ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` too.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from doughflow.tracking.naming import redact

if TYPE_CHECKING:
    from mlflow import MlflowClient

ARTIFACTS_FOLDER = "mlflow-artifacts"  # beside a local store's database

log = logging.getLogger(__name__)

# Opened clients per URI for this process, and warm-ups in flight.
_clients: dict[str, MlflowClient] = {}
_warming: dict[str, threading.Thread] = {}
_lock = threading.Lock()
WARM_UP_THREAD = "doughflow-mlflow-warm-up"  # the thread's name (doughflow/training/deepspeed_import.py looks for it)


class TrackingError(RuntimeError):
    """MLflow could not be reached or refused a request. The message names the tracking URI and the cause
    with every URL password redacted; it is raised without its cause attached, since MLflow's own error
    (and the requests error under it) quotes the URL whole, password included."""


def _new_client(uri: str) -> MlflowClient:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Ending a run would print its link to stdout (one more request), ahead of the run's JSON line;
    # the track stage logs the link itself.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def warm_up(uri: str) -> None:
    """Import MLflow and open the store at ``uri`` on a daemon thread (once per URI and process)."""
    with _lock:
        if uri in _clients or uri in _warming:
            return
        thread = threading.Thread(target=_open, args=(uri,), name=WARM_UP_THREAD, daemon=True)
        _warming[uri] = thread
    thread.start()


def _open(uri: str) -> None:
    try:
        client = _new_client(uri)
        client.search_experiments(max_results=1)  # opens the store (a new SQLite database is created here)
        _save_a_tiny_onnx_model()
    except Exception as error:  # noqa: BLE001 - the track stage opens it again and fails naming the URI
        log.warning(
            "MLflow at %s cannot be opened (%s): tracking this run will fail at its end unless it can",
            redact(uri),
            redact(str(error)),
        )
        return
    with _lock:
        _clients.setdefault(uri, client)


def _save_a_tiny_onnx_model() -> None:
    """What saving the run's model costs the first time in a process, paid here: importing the ONNX
    flavor, and MLflow's map of installed packages, which it builds by reading every installed
    distribution's file list to check the model's requirements (1.2 s of CPU here, 12 s on a loaded
    machine). A one-node model saved to a temporary folder fills both."""
    import tempfile

    import mlflow.onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "warm-up",
            [value],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
    )
    with tempfile.TemporaryDirectory(prefix="doughflow-mlflow-warm-up-") as scratch:
        mlflow.onnx.save_model(
            model, f"{scratch}/model", save_as_external_data=False, pip_requirements=onnx_requirements()
        )


def onnx_requirements() -> list[str]:
    """The logged model's pip requirements, given (left to MLflow, it infers them by loading the model
    in a subprocess: 10.5 s against 0.01 s here)."""
    from importlib.metadata import version

    return [f"onnx=={version('onnx')}", f"onnxruntime=={version('onnxruntime')}"]


def client_for(uri: str) -> MlflowClient:
    """A client for runs and the model registry at ``uri``: the warmed-up one when there is one (MLflow
    is imported only when tracking is on)."""
    with _lock:
        thread = _warming.pop(uri, None)
    if thread is not None:
        thread.join()
    with _lock:
        if uri in _clients:
            return _clients[uri]
    client = _new_client(uri)
    with _lock:
        return _clients.setdefault(uri, client)


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def local_artifact_root(uri: str) -> str | None:
    """For a SQLite store, the ``file://`` folder beside its database; None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///") :])
    return (database.parent / ARTIFACTS_FOLDER).resolve().as_uri()


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created on first use (a concurrent creator wins harmlessly)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=local_artifact_root(uri)))
    except MlflowException as error:
        again = client.get_experiment_by_name(name)
        if again is None:
            raise TrackingError(
                f"cannot create MLflow experiment {name!r} at {redact(uri)}: {redact(str(error))}"
            ) from None
        return str(again.experiment_id)


def how_to_look(uri: str, experiment: str | None = None, run: str | None = None) -> str:
    """Where a person sees a run: its page on a server, or the ``mlflow ui`` command for a database."""
    if is_server(uri):
        base = redact(uri).rstrip("/")
        if experiment and run:
            return f"{base}/#/experiments/{quote(experiment)}/runs/{quote(run)}"
        return base
    return f"mlflow ui --backend-store-uri {redact(uri)}"
