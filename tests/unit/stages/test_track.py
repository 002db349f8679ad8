"""The track stage: what a finished run's results become in MLflow (read back from a real local store),
and an MLflow that cannot be used reported in the run's result instead of failing a complete run."""

from __future__ import annotations

import json
import time

from mlflow import MlflowClient

from doughflow.config import load_config
from doughflow.export.onnx_export import ParityReport
from doughflow.packaging.bundle import BundleResult
from doughflow.release.gates import ReleaseDecision
from doughflow.reporting.report import ReportFiles
from doughflow.runs import RunPaths
from doughflow.stages.evaluate import EvaluationResult
from doughflow.stages.export import ExportResult
from doughflow.stages.track import track
from doughflow.training.job import TrainResult
from tests.support.onnx_models import tiny_onnx

HISTORY = {"epoch": [{"epoch": 1, "train_loss": 2.0, "lr": 0.003, "seconds": 1.0, "global_step": 4, "val_mae": 0.8}]}


def results(tmp_path):
    bundle = tmp_path / "pizza-run7" / "bundle"
    bundle.mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps({"data_fingerprint": "d" * 64, "git": {"commit": "c0ffee"}}))
    report = ReportFiles(str(bundle / "report.md"), str(bundle / "report.html"), [])
    for path in (report.markdown, report.html):
        open(path, "w").write("report")
    metrics = {"test": {"n": 10, "mae": 0.5, "per_topping": {"olive": {"mae": 0.25}}}}
    (bundle / "metrics.json").write_text(json.dumps(metrics))
    trained = TrainResult("m.pt", "h.json", "ds.json", 1, 0, 2.0, 1.5, 1, 3.0, 100.0, history=HISTORY)
    evaluated = EvaluationResult(metrics, str(bundle / "metrics.json"), "p.parquet", [])
    exported = ExportResult(tiny_onnx(bundle / "model.onnx"), ParityReport(10, 1e-6, 1e-7, 1.0, 1e-3, 1.0, True))
    decision = ReleaseDecision("released", [], [], ["onnx"])
    return (
        RunPaths(tmp_path, "pizza-run7", time.time()),
        trained,
        evaluated,
        exported,
        report,
        BundleResult(str(bundle), str(bundle / "manifest.json"), 3),
        decision,
    )


def test_a_finished_run_in_a_local_store(tmp_path, mlflow_uri):
    config = load_config(
        None,
        [
            f"artifacts_dir={tmp_path}",
            "tune.storage=postgresql://u:secret@db/optuna",
            f"tracking.mlflow.uri={mlflow_uri}",
            "tracking.mlflow.experiment=stage-test",
            "tracking.mlflow.registered_model=stage-test",
        ],
    )
    done = track(config, *results(tmp_path))
    assert done.error is None and done.summary()["look"] == f"mlflow ui --backend-store-uri {mlflow_uri}"
    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    run = client.get_run(done.tracked.run_id)
    assert (
        run.data.tags["doughflow.data_fingerprint"] == "d" * 64
        and run.data.tags["mlflow.source.git.commit"] == "c0ffee"
    )
    assert run.data.tags["release_status"] == "released" and run.data.tags["review"] == "pending"
    assert run.data.params["tune.storage"] == "postgresql://u:***@db/optuna"
    assert run.data.metrics["test/mae/olive"] == 0.25 and run.data.metrics["onnx_max_abs_diff"] == 1e-6
    assert client.get_model_version("stage-test", "1").tags["review"] == "pending"
    assert not load_config(None, ["tracking.mlflow.enabled=false"]).tracking.mlflow.enabled
    assert track(load_config(None, ["tracking.mlflow.enabled=false"]), *results(tmp_path / "off")) is None


def test_an_unusable_store_is_reported_not_raised(tmp_path):
    (tmp_path / "a-file").write_text("")
    unusable = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    done = track(
        load_config(None, [f"artifacts_dir={tmp_path}", f"tracking.mlflow.uri={unusable}"]), *results(tmp_path)
    )
    assert done.tracked is None and done.summary()["error"].startswith(
        f"MLflow tracking at {unusable} failed for run pizza-run7"
    )
