"""The whole training flow on a tiny set: the release stages run, the bundle carries the decision,
model card, formats and verification sample, and flows.verify agrees with the decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doughflow.config import load_config
from doughflow.evaluation.gates import ReleaseRejected


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory):
    import os

    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.mark.slow
def test_tiny_run_gates_packages_and_verifies(tmp_path, prefect_harness):
    from flows.train import train
    from flows.verify import main as verify

    config = load_config(None, [
        f"artifacts_dir={tmp_path}", "data.source.generator.num_images=240", "data.source.generator.num_customers=40",
        "data.source.generator.rows_per_shard=120", "train.epochs=1", "train.micro_batch_size=32",
        "train.warmup_steps=2", "evaluate.min_exact_count_accuracy=0.0", "release.properties.examples=3",
        "release.quantization.calibration_samples=16", "release.quantization.latency_repeats=2",
    ])
    try:
        train(config=config, run_id="tiny")
        rejected = False
    except ReleaseRejected as error:
        rejected = True
        assert "bundle" in str(error) and "marked rejected" in str(error)
    bundle = Path(tmp_path) / "tiny" / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["release"]["status"] == ("rejected" if rejected else "released")
    assert {"onnx", "coreml_fp32"} <= set(manifest["formats"])
    for name in ("model_card.md", "model.onnx", "verify_sample.npz", "error_analysis.png", "report.md"):
        assert name in manifest["files"], name
    assert any(name.startswith("model.mlpackage/") for name in manifest["files"])
    report = (bundle / "report.md").read_text()
    for heading in ("## Release decision", "## Deploy formats", "## Behavioural tests", "## Error analysis"):
        assert heading in report
    assert verify([str(bundle)]) == (3 if rejected else 0)
