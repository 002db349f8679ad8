"""What a gated release adds to the bundle: the shipped model files, how to verify each, the
decision, and the model card. Kept apart from bundle.py, which knows nothing of formats or gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for, problem_of
from doughflow.data.split import SplitResult
from doughflow.export.formats import DeployResult
from doughflow.packaging.model_card import dataset_statistics, hyperparameter_rows, render_model_card
from doughflow.packaging.verify import SAMPLE
from doughflow.release.gates import ReleaseDecision


def format_tolerance(config: ExperimentConfig, name: str) -> float:
    if name == "onnx":
        return config.export.parity_atol
    return getattr(config.release.tolerances, name).atol


def shipped_files(formats: DeployResult, decision: ReleaseDecision) -> dict[str, Path]:
    """Bundle name -> source for every shipped format (failed optional formats stay out), plus the
    verification sample."""
    files = {f.bundle_name: Path(f.path) for f in formats.formats if f.name in decision.shipped and f.path}
    if formats.sample_path:
        files[SAMPLE] = Path(formats.sample_path)
    return files


def manifest_extra(config: ExperimentConfig, formats: DeployResult, decision: ReleaseDecision) -> dict:
    entries = {}
    for result in formats.formats:
        if result.name not in decision.shipped:
            continue
        runtime = "coreml" if result.name.startswith("coreml") else "onnxruntime"
        entries[result.name] = {
            "file": result.bundle_name,
            "runtime": runtime,
            "atol": format_tolerance(config, result.name),
            "precision": "fp16" if result.name.endswith("fp16") else "int8" if "int8" in result.name else "fp32",
            "bytes": result.size_bytes,
        }
    return {
        "release": {
            "status": decision.status,
            "reasons": decision.reasons,
            "excluded": decision.excluded,
            "shipped": [name for name in decision.shipped if name in entries],
            "gates": [g.__dict__ for g in decision.gates],
        },
        "formats": entries,
    }


def split_targets(config: ExperimentConfig, splits: SplitResult) -> dict[str, np.ndarray]:
    """Label columns only (no image decoding) of each split, for the model card's statistics."""
    columns = adapter_for(config).target_columns
    out = {}
    for name, manifest in splits.manifests.items():
        parts = [
            np.stack([pq.read_table(p, columns=columns).column(c).to_numpy() for c in columns], axis=1)
            for p in manifest.paths()
        ]
        out[name] = np.concatenate(parts) if parts else np.zeros((0, len(columns)))
    return out


def model_card(
    config: ExperimentConfig,
    *,
    run_id: str,
    data_fingerprint: str,
    splits: SplitResult,
    metrics: dict,
    formats: DeployResult,
    decision: ReleaseDecision,
    bundle_files: dict[str, Path],
    epochs_run: int | None = None,
    world_size: int = 1,
    training: str | None = None,
) -> str:
    return render_model_card(
        name=config.name,
        run_id=run_id,
        labels=config.label_names,
        data_fingerprint=data_fingerprint,
        config_hash=config.config_hash(),
        image_size=config.data.image_size,
        dataset_rows=dataset_statistics(split_targets(config, splits), config.label_names, problem_of(config)),
        metrics=metrics,
        decision=decision,
        formats=formats.formats,
        card=config.card,
        bundle_files={name: {} for name in bundle_files},
        problem=problem_of(config),
        hyperparameters=hyperparameter_rows(config.train, epochs_run, world_size),
        training=training,
    )
