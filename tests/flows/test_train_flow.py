"""Smoke test of the whole training flow on a tiny pizza set, through the real command line."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from doughflow.cli.flow import run_flow_cli
from doughflow.packaging.bundle import verify_bundle
from tests.support.configs import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_FILES = {"model.onnx", "labels.json", "preprocessing.json", "metrics.json", "config.yaml", "report.md",
                "report.html", "manifest.json", "ds_config.json", "loss_curve.png"}


@pytest.mark.slow
def test_train_flow_end_to_end(prefect_api, tmp_path, capsys):
    from flows.train import train

    argv = ["--config", str(ROOT / "configs" / "pizza.yaml"), *TINY_OVERRIDES, f"artifacts_dir={tmp_path}",
            "tracking.mlflow.enabled=true"]  # the default store: sqlite under artifacts_dir
    run_flow_cli(train, argv=argv)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bundle = Path(summary["bundle"])

    assert summary["metrics"]["final_loss"] < summary["metrics"]["first_loss"]
    assert BUNDLE_FILES <= {p.name for p in bundle.iterdir()}
    assert verify_bundle(bundle) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert len(manifest["data_fingerprint"]) == 64 and manifest["parity"]["onnx"]["passed"]
    assert json.loads((bundle / "labels.json").read_text())["labels"] == ["pepperoni", "mushroom", "olive", "basil", "pepper"]
    assert summary["metrics"]["onnx_max_abs_diff"] <= 1e-3
    report = (bundle / "report.md").read_text()
    for heading in ("## Data", "## Training", "## Metrics", "## ONNX parity", "## Worst test examples"):
        assert heading in report
    assert "data:image/png;base64," in (bundle / "report.html").read_text()

    assert manifest["release"]["status"] == "released"
    assert {"onnx", "coreml_fp32"} <= set(manifest["formats"])
    for name in ("model_card.md", "verify_sample.npz", "error_analysis.png"):
        assert name in manifest["files"], name
    assert any(name.startswith("model.mlpackage/") for name in manifest["files"])
    for heading in ("## Release decision", "## Deploy formats", "## Behavioural tests", "## Error analysis"):
        assert heading in report
    from doughflow.cli.verify import main as verify

    assert verify([str(bundle)]) == 0

    run_dir = bundle.parent
    quarantine = pq.read_table(run_dir / "data" / "valid" / "quarantine.parquet")
    assert quarantine.num_rows == 4 and set(quarantine.column("_reason").to_pylist()) != {""}

    from prefect.client.orchestration import get_client

    async def artifact_keys():
        async with get_client() as client:
            return [a.key for a in await client.read_artifacts()]

    import asyncio

    keys = asyncio.run(artifact_keys())
    for prefix in ("report-", "metrics-", "bundle-", "train-progress-"):
        assert any(key and key.startswith(prefix) for key in keys), (prefix, keys)

    # MLflow, read back from the default local store the run printed how to open
    from mlflow import MlflowClient

    tracked = summary["mlflow"]
    store = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracked["look"] == f"mlflow ui --backend-store-uri {store}" and tracked["model_version"] == "pizza/1"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(tracked["run_id"])
    assert run.info.run_name == summary["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["labels"] == json.dumps(
        ["pepperoni", "mushroom", "olive", "basil", "pepper"])
    tags = run.data.tags
    assert tags["doughflow.data_fingerprint"] == manifest["data_fingerprint"]
    assert tags["mlflow.source.git.commit"] == manifest["git"]["commit"] and tags["release_status"] == "released"
    assert len(tags["prefect.flow_run_id"]) == 36 and summary["run_id"].endswith(tags["prefect.flow_run_id"].replace("-", "")[:12])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_exact_count_accuracy")] == [1, 2]
    assert run.data.metrics["test/mae"] == pytest.approx(summary["metrics"]["test_mae"])
    assert "test/exact_count_accuracy/olive" in run.data.metrics and "onnx/latency_ms" in run.data.metrics
    assert {"report.html", "report.md", "metrics.json", "bundle"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    version = client.get_model_version("pizza", "1")
    assert version.run_id == run.info.run_id and version.tags["release_status"] == "released"
    assert version.tags["review"] == "pending"


def test_cli_rejects_bad_config_before_any_work(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flows.train", "train.epochs=-1", "train.nope=1",
                             f"artifacts_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "train.epochs" in result.stderr and "train.nope: unknown field" in result.stderr
    assert not any(tmp_path.iterdir())
