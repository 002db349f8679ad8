"""Package stage: the bundle a consumer runs without our code, with a manifest of hashes, signed when a
signing key is configured (``packaging.signing_key`` or DOUGHFLOW_SIGNING_KEY)."""

from __future__ import annotations

from pathlib import Path

from doughflow.config import ExperimentConfig, dump_config
from doughflow.data.adapters import adapter_for
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SplitResult
from doughflow.export.formats import DeployResult
from doughflow.packaging.bundle import BundleResult, build_bundle
from doughflow.packaging.release_contents import manifest_extra, model_card, shipped_files
from doughflow.packaging.signing import sign_bundle, signing_key_path
from doughflow.preprocessing import preprocessing_for
from doughflow.release.gates import ReleaseDecision
from doughflow.reporting.report import ReportFiles
from doughflow.runs import RunPaths
from doughflow.stages.evaluate import EvaluationResult
from doughflow.stages.export import ExportResult
from doughflow.training.job import TrainResult
from doughflow.training.recipe import Recipe


def label_map(config: ExperimentConfig) -> dict:
    """What the outputs mean, from the dataset adapter (count_regression or classification)."""
    return adapter_for(config).label_map()


def package(
    config: ExperimentConfig,
    paths: RunPaths,
    raw: DataManifest,
    trained: TrainResult,
    evaluated: EvaluationResult,
    exported: ExportResult,
    report: ReportFiles,
    splits: SplitResult | None = None,
    formats: DeployResult | None = None,
    decision: ReleaseDecision | None = None,
) -> BundleResult:
    """With ``formats`` and ``decision`` (the gated release) the bundle also holds every shipped
    format, a verification sample, the decision in the manifest and a model card."""
    report_dir = Path(report.markdown).parent
    files = {
        "model.onnx": Path(exported.onnx_path),
        "metrics.json": Path(evaluated.metrics_path),
        "report.md": Path(report.markdown),
        "report.html": Path(report.html),
        "ds_config.json": Path(trained.ds_config_path),
        **{name: report_dir / name for name in report.figures},
    }
    documents: dict[str, dict | list | str] = {
        "labels.json": label_map(config),
        "preprocessing.json": preprocessing_for(config).to_json(),
        "config.yaml": dump_config(config),
    }
    extra = {
        "experiment": config.name,
        "parity": {
            "onnx": {
                "max_abs_diff": exported.parity.max_abs_diff,
                "rounded_agreement": exported.parity.rounded_agreement,
                "passed": exported.parity.passed,
            }
        },
    }
    if formats is not None and decision is not None:
        if splits is None:
            raise ValueError("a release bundle needs the splits: its model card states their statistics")
        files.update(shipped_files(formats, decision))
        extra.update(manifest_extra(config, formats, decision))
        documents["model_card.md"] = model_card(
            config,
            run_id=paths.run_id,
            data_fingerprint=raw.fingerprint,
            splits=splits,
            metrics=evaluated.metrics,
            formats=formats,
            decision=decision,
            bundle_files=files,
            epochs_run=trained.epochs_run,
            world_size=trained.world_size,
            training=Recipe.from_dict(trained.recipe).describe() if trained.recipe else None,
        )
    result = build_bundle(
        paths.bundle_dir,
        files=files,
        documents=documents,
        run_id=paths.run_id,
        data_fingerprint=raw.fingerprint,
        config_hash=config.config_hash(),
        extra=extra,
        root=paths.artifacts_dir,
    )
    key = signing_key_path(config.packaging.signing_key)
    if key is not None:  # last: the signature covers every file, the manifest included
        result.signature = str(sign_bundle(Path(result.bundle_dir), key))
    return result
