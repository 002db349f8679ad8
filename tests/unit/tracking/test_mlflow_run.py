"""A finished run logged to a real MLflow store (SQLite, in-process) and read back with MlflowClient:
params, tags, per-epoch and final metrics, artifacts, the ONNX model as a logged model, the registered
version of a released bundle and its review tag; a rerun logs nothing twice."""

from __future__ import annotations

import time

import numpy as np
import pytest
from mlflow import MlflowClient

from doughflow.tracking.mlflow_run import RunRecord, log_train_run, set_review_state
from doughflow.tracking.store import TrackingError, how_to_look
from tests.support.onnx_models import tiny_onnx

EPOCHS = [
    {"epoch": 1, "train_loss": 2.0, "lr": 0.003, "seconds": 1.5, "global_step": 12, "val_mae": 0.9},
    {"epoch": 2, "train_loss": 1.0, "lr": 0.001, "seconds": 1.4, "global_step": 24, "val_mae": 0.5},
]
FINAL = {
    "test": {
        "n": 40,
        "mae": 0.4,
        "exact_count_accuracy": 0.8,
        "per_topping": {"olive": {"mae": 0.3, "exact_count_accuracy": 0.9}},
    }
}


def record(tmp_path, run_id: str, experiment: str, released: bool) -> RunRecord:
    report = tmp_path / "report.html"
    report.write_text("<h1>report</h1>")
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "manifest.json").write_text("{}")
    return RunRecord(
        run_id=run_id,
        experiment=experiment,
        started_at=time.time() - 60,
        params={"train.learning_rate": "0.003", "labels": '["olive"]'},
        tags={
            "release_status": "released" if released else "rejected",
            "review": "pending",
            "doughflow.data_fingerprint": "f" * 64,
            "mlflow.source.git.commit": "abc123",
        },
        epochs=EPOCHS,
        final=FINAL,
        extra_metrics={"onnx/latency_ms": 0.5},
        artifacts=[(str(report), None), (str(bundle), "bundle")],
        onnx_path=tiny_onnx(tmp_path / "m.onnx"),
        register_as="counter" if released else None,
        version_tags={"release_status": "released", "review": "pending"} if released else {},
    )


def test_a_released_run_reads_back_whole(mlflow_uri, tmp_path):
    tracked = log_train_run(mlflow_uri, record(tmp_path, "pizza-run1", "runs-released", released=True))
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "pizza-run1"
    assert run.data.params == {"train.learning_rate": "0.003", "labels": '["olive"]'}
    tags = run.data.tags
    assert tags["doughflow.run_id"] == "pizza-run1" and tags["release_status"] == "released"
    assert tags["mlflow.source.git.commit"] == "abc123"
    assert [(m.step, m.value) for m in client.get_metric_history(tracked.run_id, "train_loss")] == [(1, 2.0), (2, 1.0)]
    assert [m.step for m in client.get_metric_history(tracked.run_id, "val_mae")] == [1, 2]
    assert run.data.metrics["test/mae/olive"] == 0.3 and run.data.metrics["test/exact_count_accuracy"] == 0.8
    assert run.data.metrics["onnx/latency_ms"] == 0.5
    assert {a.path for a in client.list_artifacts(tracked.run_id)} == {"report.html", "bundle"}
    assert [a.path for a in client.list_artifacts(tracked.run_id, "bundle")] == ["bundle/manifest.json"]

    model = client.get_logged_model(tracked.model_id)
    assert model.source_run_id == tracked.run_id and model.status.to_int() == 2  # READY
    import mlflow.pyfunc

    served = mlflow.pyfunc.load_model(model.artifact_location)  # the ONNX flavor runs it with onnxruntime
    out = served.predict({"images": np.array([[-1.0, 0.0, 2.0]], dtype=np.float32)})
    assert np.allclose(out["counts"], [[0.0, 0.0, 2.0]])

    version = client.get_model_version("counter", tracked.model_version)
    assert version.run_id == tracked.run_id and version.tags == {
        "doughflow.run_id": "pizza-run1",
        "release_status": "released",
        "review": "pending",
    }
    assert tracked.look == how_to_look(mlflow_uri) == f"mlflow ui --backend-store-uri {mlflow_uri}"

    again = log_train_run(mlflow_uri, record(tmp_path, "pizza-run1", "runs-released", released=True))
    assert again.reused and again.run_id == tracked.run_id and again.model_version == tracked.model_version
    assert len(client.search_model_versions("name = 'counter'")) == 1

    assert set_review_state(
        mlflow_uri, "runs-released", "pizza-run1", {"status": "approved", "figures": {"share_correct": 0.975}}
    ) == ["counter/1"]
    version = client.get_model_version("counter", tracked.model_version)
    assert version.tags["review"] == "approved" and version.tags["review_share_correct"] == "0.9750"
    assert client.get_run(tracked.run_id).data.tags["review"] == "approved"


def test_a_rejected_run_registers_nothing_and_an_unfinished_one_is_replaced(mlflow_uri, tmp_path):
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    experiment = client.create_experiment("runs-rejected", artifact_location=(tmp_path / "store").as_uri())
    crashed = client.create_run(experiment, tags={"doughflow.run_id": "pizza-run2"})  # logging died mid-way
    tracked = log_train_run(mlflow_uri, record(tmp_path, "pizza-run2", "runs-rejected", released=False))
    assert tracked.model_version is None and tracked.model_id is not None
    assert client.get_run(crashed.info.run_id).info.lifecycle_stage == "deleted"
    live = client.search_runs([experiment])
    assert [r.info.run_id for r in live] == [tracked.run_id] and live[0].data.tags["release_status"] == "rejected"
    assert set_review_state(mlflow_uri, "runs-rejected", "pizza-run2", {"status": "approved", "figures": {}}) == []
    assert set_review_state(mlflow_uri, "no-such-experiment", "pizza-run2", {"status": "approved"}) == []


def test_an_unusable_store_fails_naming_it_without_its_password(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's default backs off for minutes
    (tmp_path / "a-file").write_text("not a folder")
    unusable = f"sqlite:///{tmp_path / 'a-file' / 'x.db'}"
    with pytest.raises(TrackingError, match=f"MLflow tracking at {unusable} failed for run r"):
        log_train_run(unusable, record(tmp_path, "r", "e", released=False))
    with pytest.raises(TrackingError) as caught:
        log_train_run("http://user:hunter2@127.0.0.1:1/", record(tmp_path, "r", "e", released=False))
    assert "hunter2" not in str(caught.value) and "http://user:***@127.0.0.1:1/" in str(caught.value)
