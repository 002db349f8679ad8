"""Smoke test of the whole training flow on a tiny pizza set, through the real command line."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from doughflow.caching import covers
from doughflow.cli.flow import run_flow_cli
from doughflow.orchestration.results import SERIALIZER_TYPE, read_trusted
from doughflow.orchestration.stage_tasks import KEY_EXEMPT_FIELDS, STAGE_SECTIONS
from doughflow.packaging.bundle import verify_bundle
from tests.support.config_trace import config_reads, stage_tasks, uncovered
from tests.support.configs import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_FILES = {
    "model.onnx",
    "labels.json",
    "preprocessing.json",
    "metrics.json",
    "config.yaml",
    "report.md",
    "report.html",
    "manifest.json",
    "ds_config.json",
    "loss_curve.png",
}


@pytest.mark.slow
def test_train_flow_end_to_end(prefect_api, tmp_path, capsys):
    from flows.train import train

    argv = [
        "--config",
        str(ROOT / "configs" / "pizza.yaml"),
        *TINY_OVERRIDES,
        f"artifacts_dir={tmp_path}",
        "tracking.mlflow.enabled=true",  # the default store: sqlite under artifacts_dir
        "release.coreml.enabled=true",  # the whole release, both CoreML formats included
    ]
    with config_reads(stage_tasks()) as reads:  # which config fields each cached stage really reads
        run_flow_cli(train, argv=argv)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # A stage reading a field its cache key leaves out would serve stale results when that field changes.
    assert set(reads) == set(STAGE_SECTIONS), set(STAGE_SECTIONS) - set(reads)
    relevant = {stage: {f for f in fields if not covers(KEY_EXEMPT_FIELDS, f)} for stage, fields in reads.items()}
    assert uncovered(relevant, STAGE_SECTIONS) == {}
    bundle = Path(summary["bundle"])

    assert summary["metrics"]["final_loss"] < summary["metrics"]["first_loss"]
    assert BUNDLE_FILES <= {p.name for p in bundle.iterdir()}
    assert verify_bundle(bundle) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert len(manifest["data_fingerprint"]) == 64 and manifest["parity"]["onnx"]["passed"]
    assert json.loads((bundle / "labels.json").read_text())["labels"] == [
        "pepperoni",
        "mushroom",
        "olive",
        "basil",
        "pepper",
    ]
    assert summary["metrics"]["onnx_max_abs_diff"] <= 1e-3
    report = (bundle / "report.md").read_text()
    for heading in ("## Data", "## Training", "## Metrics", "## ONNX parity", "## Worst test examples"):
        assert heading in report
    assert "data:image/png;base64," in (bundle / "report.html").read_text()
    # the recipe that ran, where a reader looks: summary (and so the registry), report, model card, ds_config
    assert {
        k: summary["recipe"][k] for k in ("world_size", "device", "global_batch_size", "effective_learning_rate")
    } == {"world_size": 1, "device": "cpu", "global_batch_size": 32, "effective_learning_rate": 0.003}
    assert "global batch 32 = micro batch 32 x accumulation 1 x 1" in report
    assert json.loads((bundle / "ds_config.json").read_text())["doughflow"]["recipe"]["global_batch_size"] == 32

    assert manifest["release"]["status"] == "released"
    assert {"onnx", "coreml_fp32"} <= set(manifest["formats"])
    for name in ("model_card.md", "verify_sample.npz", "error_analysis.png"):
        assert name in manifest["files"], name
    assert "Trained with: 1 process(es) on cpu; global batch 32" in (bundle / "model_card.md").read_text()
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

    # Every persisted result is JSON of our own types, never pickle, and reads back as such: task records
    # name our serializer; flow results are bare JSON payloads.
    records = [p for p in (tmp_path / ".prefect-results").iterdir() if p.is_file()]
    wrapped = [json.loads(p.read_bytes()) for p in records if "metadata" in json.loads(p.read_bytes())]
    assert len(wrapped) >= len(STAGE_SECTIONS)
    assert {record["metadata"]["serializer"]["type"] for record in wrapped} == {SERIALIZER_TYPE}
    for record in records:
        read_trusted(record.read_bytes(), str(record))

    keys = asyncio.run(artifact_keys())
    # stable per experiment (the UI keeps each key's history across runs), never per run
    for key in (
        "pizza-report",
        "pizza-metrics",
        "pizza-bundle",
        "pizza-train-progress",
        "pizza-subsample",
        "pizza-subsample-progress",
    ):
        assert key in keys, (key, keys)
    assert "Prefect flow run: [http" in report or "Prefect flow run: none kept" in report
    for text in ("## Compared with the previous run", "**Model.** `density_cnn`", "**Hardware.**", "parameters"):
        assert text in report, text
    assert "resumed" not in report.split("## Training")[1].split("##")[0]  # a fresh run says nothing of resuming

    # MLflow, read back from the default local store the run printed how to open
    from mlflow import MlflowClient

    tracked = summary["mlflow"]
    store = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert tracked["look"] == f"mlflow ui --backend-store-uri {store}" and tracked["model_version"] == "pizza/1"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(tracked["run_id"])
    assert run.info.run_name == summary["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["labels"] == json.dumps(
        ["pepperoni", "mushroom", "olive", "basil", "pepper"]
    )
    tags = run.data.tags
    assert tags["doughflow.data_fingerprint"] == manifest["data_fingerprint"]
    assert tags["mlflow.source.git.commit"] == manifest["git"]["commit"] and tags["release_status"] == "released"
    assert len(tags["prefect.flow_run_id"]) == 36 and summary["run_id"].endswith(
        tags["prefect.flow_run_id"].replace("-", "")[:12]
    )
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_exact_count_accuracy")] == [1, 2]
    assert run.data.metrics["test/mae"] == pytest.approx(summary["metrics"]["test_mae"])
    assert "test/exact_count_accuracy/olive" in run.data.metrics and "onnx/latency_ms" in run.data.metrics
    assert {"report.html", "report.md", "metrics.json", "bundle"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)
    }
    version = client.get_model_version("pizza", "1")
    assert version.run_id == run.info.run_id and version.tags["release_status"] == "released"
    assert version.tags["review"] == "pending"


def test_cli_rejects_bad_config_before_any_work(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "flows.train", "train.epochs=-1", "train.nope=1", f"artifacts_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "train.epochs" in result.stderr and "train.nope: unknown field" in result.stderr
    assert not any(tmp_path.iterdir())
