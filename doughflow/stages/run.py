"""The JSON lines a run ends with: where things are and the numbers people ask for first.

The last stdout line of ``python -m flows.train`` (and ``flows.prepare``) is one of these objects, so
scripts can read a run's outcome without parsing logs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from doughflow import runlock
from doughflow.config import ExperimentConfig
from doughflow.data.dedup.subsample import SubsampleResult
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SplitResult
from doughflow.data.validate import ValidationResult
from doughflow.export.formats import DeployResult
from doughflow.orchestration.runtime import root_flow_run_id
from doughflow.packaging.bundle import BundleResult
from doughflow.packaging.publish import PublishResult
from doughflow.release.gates import ReleaseDecision
from doughflow.runs import RunPaths, new_run_id
from doughflow.stages.evaluate import EvaluationResult
from doughflow.stages.export import ExportResult
from doughflow.stages.track import TrackResult
from doughflow.training.job import TrainResult
from doughflow.training.recipe import Recipe


def start_run(config: ExperimentConfig, run_id: str | None = None) -> RunPaths:
    """The run's folder layout; a new id unless ``run_id`` names a run to resume into. The id is checked
    (InvalidRunIdError) and the run folder locked for this flow run (RunInUseError naming the process
    that has it) before any stage writes."""
    owner = root_flow_run_id()
    paths = RunPaths(Path(config.artifacts_dir), run_id or new_run_id(config.name, owner), time.time())
    runlock.acquire(paths.stage(""), owner=owner)
    return paths


def run_summary(
    paths: RunPaths,
    bundle: BundleResult,
    evaluated: EvaluationResult,
    trained: TrainResult,
    exported: ExportResult,
    formats: DeployResult | None = None,
    decision: ReleaseDecision | None = None,
    published: PublishResult | None = None,
    tracked: TrackResult | None = None,
) -> dict:
    """The JSON line a run ends with: where things are and the numbers people ask for first."""
    test = evaluated.metrics.get("test", {})
    release: dict[str, Any] = {}
    if decision is not None and formats is not None:
        release = {
            "release": {
                "status": decision.status,
                "shipped": decision.shipped,
                "excluded": sorted(decision.excluded),
                "formats": {
                    f.name: {
                        "bytes": f.size_bytes,
                        "latency_ms": f.latency_ms,
                        "exact_count_accuracy": f.metrics.get("exact_count_accuracy"),
                        **({"accuracy": f.metrics["accuracy"]} if "accuracy" in f.metrics else {}),
                        "max_abs_diff": f.parity.max_abs_diff if f.parity else None,
                        "rounded_agreement": f.parity.rounded_agreement if f.parity else None,
                    }
                    for f in formats.formats
                },
            }
        }
    if published is not None:
        release["published"] = published.url
    if tracked is not None:
        release["mlflow"] = tracked.summary()
    return {
        **release,
        "run_id": paths.run_id,
        # world size, device, global batch, effective learning rate: how the hardware shaped this run
        **({"recipe": Recipe.from_dict(trained.recipe).headline()} if trained.recipe else {}),
        "bundle": bundle.bundle_dir,
        "report": str(Path(bundle.bundle_dir) / "report.html"),
        "metrics": {
            "test_exact_count_accuracy": test.get("exact_count_accuracy"),
            "test_image_exact_accuracy": test.get("image_exact_accuracy"),
            "test_mae": test.get("mae"),
            **{f"test_{name}": test[name] for name in ("accuracy", "macro_f1") if name in test},
            "val_exact_count_accuracy": evaluated.metrics.get("val", {}).get("exact_count_accuracy"),
            "onnx_max_abs_diff": exported.parity.max_abs_diff,
            "first_loss": trained.first_loss,
            "final_loss": trained.final_loss,
            "train_seconds": round(trained.seconds, 1),
        },
    }


def data_summary(
    paths: RunPaths, raw: DataManifest, validated: ValidationResult, subsampled: SubsampleResult, splits: SplitResult
) -> dict:
    """The JSON line ``flows.prepare`` ends with: rows per step and where the splits are."""
    steps = {"fetched": raw.rows, "valid": validated.rows_valid, "quarantined": validated.rows_quarantined}
    for step in subsampled.steps:
        steps[step.step] = step.rows_out
    return {
        "run_id": paths.run_id,
        "fingerprint": raw.fingerprint,
        "output": str(paths.run_dir / "data" / "split"),
        "rows": {**steps, **{f"split_{name}": rows for name, rows in splits.rows.items()}},
        "removed": subsampled.removed_path,
        "subsample_report": subsampled.report_path,
    }
