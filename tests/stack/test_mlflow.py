"""The compose stack's MLflow service, natively: its server exactly as docker-compose.yml runs it (on
loopback, store and artifacts in a test folder), a tiny train flow tracked to it through the compose
worker's MLFLOW_TRACKING_URI, everything read back with MlflowClient over HTTP, and the review import
tagging the registered version. The server refuses a request naming a host it does not serve."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from doughflow.config import load_config
from tests.support.compose import (
    free_port,
    http_status,
    service_command,
    service_environment,
    stack_secrets,
    start,
    stop,
    wait_until,
)
from tests.support.configs import TINY_OVERRIDES

CONTAINER_STORE = "/opt/doughflow/mlflow"  # the mlflow volume in docker-compose.yml


def _healthy(url: str):
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    return check


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """The compose `mlflow` service's command and environment; its URL as the compose worker sees it."""
    folder = tmp_path_factory.mktemp("mlflow_service")
    secrets = stack_secrets()
    ports = {5000: free_port()}
    paths = {CONTAINER_STORE: folder / "store"}
    (folder / "store").mkdir()
    log = folder / "mlflow.log"
    argv = service_command("mlflow", ports, paths, secrets)
    server = start(argv, log, {**os.environ, **service_environment("mlflow", secrets, ports, paths)})
    try:
        url = service_environment("worker", secrets, ports)["MLFLOW_TRACKING_URI"]
        assert url == f"http://127.0.0.1:{ports[5000]}"
        wait_until(_healthy(url), server, log, "the mlflow service", timeout=300)  # ~70 s on a loaded 2-core CI
        yield url, folder / "store"
    finally:
        stop(server)


@pytest.mark.slow
def test_the_server_answers_only_to_the_hosts_it_serves(mlflow_server):
    url, _ = mlflow_server
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(search) == 200
    assert http_status(search, headers={"Host": "attacker.example"}) == 403  # a rebound DNS name


@pytest.mark.slow
def test_a_tracked_run_reads_back_from_the_server(prefect_api, mlflow_server, tmp_path, monkeypatch, capsys):
    from mlflow import MlflowClient

    from doughflow.review.importer import import_review
    from flows.train import train

    url, store = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)  # as the compose worker has it; the config leaves uri empty
    config = load_config(
        None,
        [
            *TINY_OVERRIDES,
            f"artifacts_dir={tmp_path}",
            "tracking.mlflow.enabled=true",
            "tracking.mlflow.experiment=stack-pizza",
            "tracking.mlflow.registered_model=stack-pizza",
        ],
    )
    summary = train(config=config)
    tracked = summary["mlflow"]
    print(f"MLflow track stage: {tracked['seconds']} s")  # the figure README quotes (pytest -s shows it)
    assert tracked["uri"] == url and tracked["model_version"] == "stack-pizza/1"

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    run = client.get_run(tracked["run_id"])
    assert tracked["look"] == f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert run.info.run_name == summary["run_id"] and run.data.tags["release_status"] == "released"
    assert run.data.params["train.micro_batch_size"] == "32" and run.data.params["tracking.mlflow.uri"] == "null"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
    assert run.data.metrics["test/mae"] == pytest.approx(summary["metrics"]["test_mae"])
    # Artifacts went through the server into its own store (the compose volume).
    report = Path(client.download_artifacts(run.info.run_id, "report.html", str(tmp_path / "download")))
    assert report.read_bytes() == (Path(summary["bundle"]) / "report.html").read_bytes()
    assert any(store.joinpath("artifacts").rglob("report.html"))
    bundle_files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert {"manifest.json", "model.onnx", "model_card.md"} <= bundle_files
    model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    assert model.source_run_id == run.info.run_id and model.name == "model"

    version = client.get_model_version("stack-pizza", "1")
    assert version.run_id == run.info.run_id and version.run_link == tracked["look"]
    assert (version.tags["release_status"], version.tags["review"]) == ("released", "pending")

    bundle = Path(summary["bundle"])
    reviewed = import_review(bundle, None, "tester")  # no verdicts yet: the gate says "not approved"
    assert reviewed["mlflow"] == {"tagged": ["stack-pizza/1"]}
    assert client.get_model_version("stack-pizza", "1").tags["review"] == "not approved"
    assert client.get_run(run.info.run_id).data.tags["review"] == "not approved"

    # A rerun of the same doughflow run (all stages cached) finds its MLflow run: nothing logged twice.
    again = train(config=config, run_id=summary["run_id"])
    assert again["mlflow"]["run_id"] == tracked["run_id"]
    assert len(client.search_model_versions("name = 'stack-pizza'")) == 1
