"""Track stage: the finished run in MLflow, where ML teams already look (``tracking.mlflow``).

It runs once the release is decided and the bundle is built (and published), so the MLflow run carries
the same facts as the bundle's manifest: the flattened config as params; run id, data fingerprint, git
commit, config hash, Prefect flow run and release status as tags; each epoch's training and validation
metrics at step = epoch; final metrics per split and per label; the report and the bundle as artifacts;
the ONNX model as a logged model; and for a released bundle a new version of the registered model,
tagged with its release status and review state (``flows.review`` updates the review tag later).

Never cached: the store may have changed since, and a run already tracked is found and kept (see
doughflow/tracking/mlflow_run.py). MLflow failing (after its own HTTP retries) does not fail the run:
MLflow mirrors what the bundle and doughflow's registry hold, and an outage at the end of a long run
must not leave it unrecorded there. The error is logged and is the ``mlflow`` entry of the run's JSON
line; rerunning with the same run id tracks it. Disabled (``tracking.mlflow.enabled=false``), it returns None
without importing MLflow.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.export.formats import DeployResult
from doughflow.orchestration.runtime import flow_run_ui_url, root_flow_run_id
from doughflow.packaging.bundle import MANIFEST, BundleResult
from doughflow.packaging.publish import PublishResult
from doughflow.release.gates import ReleaseDecision
from doughflow.reporting.report import ReportFiles
from doughflow.runs import RunPaths
from doughflow.stages.evaluate import EvaluationResult
from doughflow.stages.export import ExportResult
from doughflow.tracking.mlflow_run import RELEASE_TAG, REVIEW_TAG, RunRecord, TrackedRun, log_train_run
from doughflow.tracking.naming import flatten_params, redact
from doughflow.tracking.store import TrackingError, warm_up
from doughflow.training.job import TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackResult:
    """The MLflow run of this doughflow run (or why there is none), and the seconds tracking took."""

    tracked: TrackedRun | None
    seconds: float
    error: str | None = None

    def summary(self) -> dict:
        """What the run's final JSON line says about MLflow."""
        tracked = self.tracked
        if tracked is None:
            return {"error": self.error, "seconds": round(self.seconds, 2)}
        out = {
            "uri": tracked.uri,
            "experiment_id": tracked.experiment_id,
            "run_id": tracked.run_id,
            "look": tracked.look,
            "seconds": round(self.seconds, 2),
        }
        if tracked.model_version:
            out["model_version"] = f"{tracked.registered_model}/{tracked.model_version}"
        return out


def open_tracking(config: ExperimentConfig) -> None:
    """At the start of a run: open the MLflow store on a background thread, so that the track stage at
    its end finds MLflow imported and the store open (see doughflow/tracking/store.py)."""
    if config.tracking.mlflow.enabled:
        warm_up(config.mlflow_uri())


def mlflow_experiment(config: ExperimentConfig) -> str:
    return config.tracking.mlflow.experiment or config.name


def run_record(
    config: ExperimentConfig,
    paths: RunPaths,
    trained: TrainResult,
    evaluated: EvaluationResult,
    exported: ExportResult,
    report: ReportFiles,
    bundle: BundleResult,
    decision: ReleaseDecision,
    formats: DeployResult | None = None,
    published: PublishResult | None = None,
) -> RunRecord:
    """The facts of a finished run, as :func:`doughflow.tracking.mlflow_run.log_train_run` logs them."""
    settings = config.tracking.mlflow
    bundle_dir = Path(bundle.bundle_dir)
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    review = manifest.get("review", {}).get("status", "pending")
    tags = {
        "doughflow.experiment": config.name,
        "doughflow.config_hash": config.config_hash(),
        "doughflow.data_fingerprint": manifest.get("data_fingerprint", ""),
        "mlflow.source.git.commit": manifest.get("git", {}).get("commit", "unknown"),
        "doughflow.bundle": str(bundle_dir.resolve()),
        RELEASE_TAG: decision.status,
        REVIEW_TAG: review,
    }
    if root_flow_run_id():
        tags["prefect.flow_run_id"] = root_flow_run_id() or ""
    if flow_run_ui_url():
        tags["prefect.flow_run_ui_url"] = flow_run_ui_url() or ""
    if published is not None:
        tags["doughflow.published_url"] = redact(published.url)
    extra: dict[str, float | int | None] = {
        "onnx_max_abs_diff": exported.parity.max_abs_diff,
        "train_seconds": trained.seconds,
        "images_per_second": trained.images_per_second,
        "first_loss": trained.first_loss,
        "final_loss": trained.final_loss,
        "best_epoch": float(trained.best_epoch or 0),
    }
    for fmt in formats.formats if formats is not None else []:
        extra.update(
            {
                f"{fmt.name}/latency_ms": fmt.latency_ms,
                f"{fmt.name}/bytes": fmt.size_bytes,
                **{
                    f"{fmt.name}/{name}": value
                    for name, value in fmt.metrics.items()
                    if isinstance(value, (int, float))
                },
            }
        )
    artifacts: list[tuple[str, str | None]] = [
        (report.html, None),
        (report.markdown, None),
        (evaluated.metrics_path, None),
    ]
    if settings.log_bundle:
        artifacts.append((str(bundle_dir), "bundle"))
    return RunRecord(
        run_id=paths.run_id,
        experiment=mlflow_experiment(config),
        started_at=paths.started_at or time.time(),
        params=flatten_params(config.model_dump(mode="json")),
        tags=tags,
        epochs=list(trained.history.get("epoch", [])),
        final=evaluated.metrics,
        extra_metrics={k: float(v) for k, v in extra.items() if isinstance(v, (int, float))},
        artifacts=artifacts,
        onnx_path=exported.onnx_path,
        register_as=(settings.registered_model or config.name) if decision.released else None,
        version_tags={RELEASE_TAG: decision.status, REVIEW_TAG: review},
    )


def track(
    config: ExperimentConfig,
    paths: RunPaths,
    trained: TrainResult,
    evaluated: EvaluationResult,
    exported: ExportResult,
    report: ReportFiles,
    bundle: BundleResult,
    decision: ReleaseDecision,
    formats: DeployResult | None = None,
    published: PublishResult | None = None,
) -> TrackResult | None:
    """Log the run to ``config.mlflow_uri()``; None when tracking is off."""
    if not config.tracking.mlflow.enabled:
        return None
    started = time.perf_counter()
    record = run_record(config, paths, trained, evaluated, exported, report, bundle, decision, formats, published)
    try:
        tracked = log_train_run(config.mlflow_uri(), record)
    except TrackingError as error:
        # MLflow mirrors the run; the bundle and doughflow's registry hold it whatever MLflow says.
        log.error(
            "%s. The run itself is complete and recorded; `python -m flows.train --run-id %s` with the "
            "same config tracks it once MLflow answers (every stage is served from the cache).",
            error,
            paths.run_id,
        )
        return TrackResult(None, time.perf_counter() - started, str(error))
    result = TrackResult(tracked, time.perf_counter() - started)
    version = (
        f", registered as {tracked.registered_model} version {tracked.model_version}" if tracked.model_version else ""
    )
    log.info(
        "MLflow run %s (experiment %s)%s in %.1f s%s; see it: %s",
        tracked.run_id,
        record.experiment,
        version,
        result.seconds,
        " (already tracked)" if tracked.reused else "",
        tracked.look,
    )
    return result
