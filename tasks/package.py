"""Package stage: the bundle a consumer runs without our code, with a manifest of hashes."""

from __future__ import annotations

from pathlib import Path

from doughflow.config import ExperimentConfig, dump_config
from doughflow.data.fetch import DataManifest
from doughflow.packaging.bundle import BundleResult, build_bundle
from doughflow.preprocessing import preprocessing_for
from doughflow.reporting.report import ReportFiles
from doughflow.runs import RunPaths
from doughflow.training.trainer import TrainResult
from tasks.common import compute_task
from tasks.evaluate import EvaluationResult
from tasks.export import ExportResult


def label_map(config: ExperimentConfig) -> dict:
    return {
        "task": "count_regression",
        "labels": config.labels,
        "index": {label: i for i, label in enumerate(config.labels)},
        "output": "counts[batch, len(labels)]: expected number of each topping",
    }


def package(config: ExperimentConfig, paths: RunPaths, raw: DataManifest, trained: TrainResult,
            evaluated: EvaluationResult, exported: ExportResult, report: ReportFiles) -> BundleResult:
    report_dir = Path(report.markdown).parent
    files = {
        "model.onnx": Path(exported.onnx_path),
        "metrics.json": Path(evaluated.metrics_path),
        "report.md": Path(report.markdown),
        "report.html": Path(report.html),
        "ds_config.json": Path(trained.ds_config_path),
        **{name: report_dir / name for name in report.figures},
    }
    documents = {
        "labels.json": label_map(config),
        "preprocessing.json": preprocessing_for(config).to_json(),
        "config.yaml": dump_config(config),
    }
    extra = {"experiment": config.name, "parity": {"onnx": {"max_abs_diff": exported.parity.max_abs_diff,
                                                            "rounded_agreement": exported.parity.rounded_agreement,
                                                            "passed": exported.parity.passed}}}
    return build_bundle(paths.bundle_dir, files=files, documents=documents, run_id=paths.run_id,
                        data_fingerprint=raw.fingerprint, config_hash=config.config_hash(), extra=extra)


package_task = compute_task(name="package")(package)
