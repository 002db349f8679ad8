"""Run identity and the folder layout of one run, so every stage agrees on where things live."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path


def new_run_id(experiment: str) -> str:
    """Inside a Prefect flow run the id derives from the flow run's, so a retry of that flow run
    (``prefect flow-run retry``) writes into the same folder and resumes from its checkpoints."""
    from prefect.runtime import flow_run

    root_id = flow_run.root_flow_run_id or flow_run.id
    if root_id:
        return f"{experiment}-{str(root_id).replace('-', '')[:12]}"
    return f"{experiment}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunPaths:
    """artifacts/<run-id>/{data,train,eval,export,report,bundle}; shared datasets sit beside runs."""

    artifacts_dir: Path
    run_id: str

    @property
    def run_dir(self) -> Path:
        return self.artifacts_dir / self.run_id

    @property
    def datasets_dir(self) -> Path:
        return self.artifacts_dir / "datasets"

    def stage(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / "bundle"


def run_summary(paths: RunPaths, bundle, report, evaluated, trained, exported, formats=None, decision=None,
                published=None) -> dict:
    """The JSON line a run ends with: where things are and the numbers people ask for first."""
    test = evaluated.metrics.get("test", {})
    release = {}
    if decision is not None and formats is not None:
        release = {"release": {
            "status": decision.status, "shipped": decision.shipped, "excluded": sorted(decision.excluded),
            "formats": {f.name: {"bytes": f.size_bytes, "latency_ms": f.latency_ms,
                                 "exact_count_accuracy": f.metrics.get("exact_count_accuracy"),
                                 **({"accuracy": f.metrics["accuracy"]} if "accuracy" in f.metrics else {}),
                                 "max_abs_diff": f.parity.max_abs_diff if f.parity else None,
                                 "rounded_agreement": f.parity.rounded_agreement if f.parity else None}
                        for f in formats.formats}}}
    if published is not None:
        release["published"] = published.url
    return {**release,
        "run_id": paths.run_id,
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


def data_summary(paths: RunPaths, raw, validated, subsampled, splits) -> dict:
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
