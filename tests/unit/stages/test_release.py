"""The release stage functions: the decision is written down, and a rejected one fails the run."""

from __future__ import annotations

import json

import pytest

from doughflow.config import ExperimentConfig
from doughflow.export.formats import DeployResult, FormatResult
from doughflow.export.onnx_export import ParityReport
from doughflow.packaging.bundle import BundleResult
from doughflow.release.gates import ReleaseRejected
from doughflow.runs import RunPaths
from doughflow.stages.behaviour import BehaviourResult
from doughflow.stages.evaluate import EvaluationResult
from doughflow.stages.release import enforce_release, release_gates


def run(tmp_path, onnx_passed: bool, accuracy: float = 0.99):
    parity = ParityReport(10, 0.0 if onnx_passed else 1.0, 0.0, 1.0 if onnx_passed else 0.1, 1e-3, 1.0, onnx_passed)
    formats = DeployResult(
        [
            FormatResult("torch", "model.pt", None, True),
            FormatResult("onnx", "model.onnx", "/m.onnx", True, parity=parity),
        ],
        10,
        "",
    )
    evaluated = EvaluationResult({"test": {"exact_count_accuracy": accuracy}}, "", "", [])
    paths = RunPaths(tmp_path, "r")
    return release_gates(ExperimentConfig(), paths, evaluated, formats, BehaviourResult()), paths


def test_passing_release_is_recorded_and_enforced_quietly(tmp_path):
    decision, paths = run(tmp_path, True)
    assert decision.released
    assert json.loads((paths.run_dir / "export" / "release.json").read_text())["status"] == "released"
    enforce_release(decision, BundleResult(str(tmp_path / "b"), "", 1))


def test_rejected_release_raises_after_packaging_with_every_reason(tmp_path):
    decision, _ = run(tmp_path, False, accuracy=0.5)
    assert not decision.released and len(decision.reasons) == 2
    with pytest.raises(ReleaseRejected, match="marked rejected.*test accuracy bar.*onnx: parity"):
        enforce_release(decision, BundleResult(str(tmp_path / "b"), "", 1))
