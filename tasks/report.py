"""Report stage: figures, Markdown and HTML for people, also published as a Prefect artifact."""

from __future__ import annotations

import json
import logging

import numpy as np

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import problem_of
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SPLITS, SplitResult
from doughflow.data.dedup.subsample import SubsampleResult
from doughflow.data.validate import ValidationResult
from doughflow.preprocessing import preprocessing_for
from doughflow.reporting import classification as cls_report
from doughflow.reporting.plots import example_grid, loss_curve
from doughflow.reporting.release_report import behaviour_section, decision_section, error_analysis_section, formats_section
from doughflow.reporting.report import ReportFiles, metrics_section, table, write_report
from doughflow.reporting.subsample import cluster_examples_figure, removed_pairs_figure, subsample_markdown
from doughflow.runs import RunPaths
from doughflow.training.data import load_split_for
from doughflow.training.trainer import TrainResult
from tasks.common import compute_task
from tasks.evaluate import EvaluationResult
from tasks.export import ExportResult

log = logging.getLogger(__name__)


def short_labels(labels: list[str]) -> list[str]:
    """The shortest prefixes (3+ letters) that still tell every label apart."""
    for length in range(3, max(map(len, labels)) + 1):
        short = [label[:length] for label in labels]
        if len(set(short)) == len(labels):
            return short
    return list(labels)


def _counts(values, labels: list[str]) -> str:
    return " ".join(f"{label}={v}" for label, v in zip(short_labels(labels), values))


def build_report(config: ExperimentConfig, paths: RunPaths, raw: DataManifest, validated: ValidationResult,
                 deduped: SubsampleResult, splits: SplitResult, trained: TrainResult, evaluated: EvaluationResult,
                 exported: ExportResult, formats=None, behaviour=None, decision=None) -> ReportFiles:
    out = paths.stage("report")
    labels = config.labels
    classify = problem_of(config) == "classification"
    loss_curve(trained.history, out / "loss_curve.png", loss_name="cross-entropy" if classify else "MSE")

    figures = ["loss_curve.png"]
    worst = evaluated.worst
    if worst:
        test = load_split_for(config, splits.manifests["test"], desc="decoding test")
        index = {sample_id: i for i, sample_id in enumerate(test.ids)}
        images = [test.images[index[w["sample_id"]]] for w in worst]
        captions = [f"{w['sample_id']}\npred {_counts(np.rint(np.clip(w['predicted'], 0, None)).astype(int), labels)}"
                    f"\ntrue {_counts(w['true'], labels)}" for w in worst] if not classify else \
            [f"{w['sample_id']}\npred %s\ntrue %s" % cls_report.class_caption(w["predicted"], w["true"], labels)
             for w in worst]
        example_grid(images, captions, out / "worst_examples.png")
        figures.append("worst_examples.png")

    if removed_pairs_figure(deduped, validated.manifest.paths(), config.data.id_column, config.data.image_column,
                            out / "removed_pairs.png"):
        figures.append("removed_pairs.png")
    if cluster_examples_figure(deduped, validated.manifest.paths(), config.data.id_column, config.data.image_column,
                               out / "cluster_examples.png"):
        figures.append("cluster_examples.png")
    test_metrics = evaluated.metrics.get("test", {})
    reasons = ", ".join(f"{k}: {v}" for k, v in validated.reasons.items()) or "none"
    data_rows = [
        ["fetched", raw.rows, f"{len(raw.shards)} shard(s) from `{raw.source}`"],
        ["quarantined", -validated.rows_quarantined, reasons],
        *[[step.step, -(step.rows_in - step.rows_out), ", ".join(f"{k}: {v}" for k, v in step.reasons.items())]
          for step in deduped.steps if step.rows_in != step.rows_out],
        *[[f"split {name}", splits.rows[name], f"{splits.groups[name]} "
           + ("customers" if config.data.group_column == "customer_id" else f"groups ({config.data.group_column})")]
          for name in SPLITS],
    ]
    epoch_rows = [[e["epoch"], e["train_loss"], e.get("val_mae", float("nan")), e.get("val_exact_count_accuracy", float("nan")),
                   e["seconds"]] for e in trained.history.get("epoch", [])]
    parity = exported.parity
    worst_rows = [[w["sample_id"], _counts(np.rint(np.clip(w["predicted"], 0, None)).astype(int), labels),
                   _counts(w["true"], labels), w["total_abs_error"]] for w in worst] if not classify else \
        [[w["sample_id"], *cls_report.class_caption(w["predicted"], w["true"], labels), w["total_abs_error"]] for w in worst]
    if classify and test_metrics.get("confusion_matrix"):
        cls_report.confusion_plot(np.asarray(test_metrics["confusion_matrix"]), labels, out / "confusion_matrix.png")
        figures.append("confusion_matrix.png")
    sections = [
        f"# doughflow run `{paths.run_id}`",
        f"Experiment **{config.name}**: "
        + (f"classifying images as {', '.join(labels)} (dataset adapter `{config.data.adapter}`)" if classify
           else f"counting {', '.join(labels)}")
        + f". Config hash `{config.config_hash()[:16]}`, data fingerprint `{raw.fingerprint[:16]}`.",
        "## Headline",
        table(["metric", "value"], cls_report.headline_rows(test_metrics, exported.parity, trained.images_per_second))
        if classify else table(["metric", "value"], [
            ["test exact-count accuracy", test_metrics.get("exact_count_accuracy", float("nan"))],
            ["test image exact accuracy", test_metrics.get("image_exact_accuracy", float("nan"))],
            ["test MAE", test_metrics.get("mae", float("nan"))],
            ["ONNX parity max abs diff", parity.max_abs_diff],
            ["training throughput (img/s)", trained.images_per_second],
        ]),
        "## Data",
        table(["step", "rows", "detail"], data_rows),
        f"Quarantined rows with their reasons: `{validated.quarantine_path}`; removed duplicates: `{deduped.removed_path}`.",
        subsample_markdown(deduped),
        *(["Removed near-duplicates (right) beside the row kept in their place (left):", "![removed pairs](removed_pairs.png)"]
          if "removed_pairs.png" in figures else []),
        *(["Examples of the largest clusters the cluster cap sees, one row each:", "![cluster examples](cluster_examples.png)"]
          if "cluster_examples.png" in figures else []),
        "## Training",
        f"DeepSpeed ZeRO-{config.train.zero_stage}, {config.train.precision}, micro batch {config.train.micro_batch_size}, "
        f"{trained.epochs_run} epoch(s) run (resumed after epoch {trained.resumed_from_epoch}), best epoch {trained.best_epoch}, "
        f"{trained.seconds:.1f} s. Loss fell from {trained.first_loss:.4f} to {trained.final_loss:.4f}.",
        "![loss curve](loss_curve.png)",
        table(cls_report.EPOCH_HEADERS, cls_report.epoch_rows(trained.history)) if classify else
        table(["epoch", "train loss", "val MAE", "val exact-count acc", "seconds"], epoch_rows),
        "## Metrics",
        cls_report.metrics_section(evaluated.metrics, labels) if classify else metrics_section(evaluated.metrics, labels),
        *(["![confusion matrix](confusion_matrix.png)"] if "confusion_matrix.png" in figures else []),
        "## ONNX parity",
        f"{parity.samples} test images, max |onnx - torch| {parity.max_abs_diff:.3g} (tolerance {parity.atol}), "
        f"{parity.agreement} equal on {parity.rounded_agreement:.2%} (required {parity.min_rounded_agreement:.0%}): "
        f"**{'passed' if parity.passed else 'FAILED'}**.",
        "## Worst test examples",
        "Predicted class (its probability) vs true class, least probability on the true class first." if classify else
        "Rounded predicted vs true counts, largest total error first.",
        (table(["sample", "predicted", "true", "1 - p(true)"] if classify else ["sample", "predicted", "true", "total abs error"],
               worst_rows) if worst_rows else "No test examples."),
    ]
    if "worst_examples.png" in figures:
        sections.append("![worst examples](worst_examples.png)")
    if decision is not None and formats is not None and behaviour is not None:
        sections += release_sections(config, splits, evaluated, formats, behaviour, decision, out, figures)
    markdown_text = "\n\n".join(sections) + "\n"
    files = write_report(out, markdown_text, f"doughflow {paths.run_id}", figures)
    (out / "summary.json").write_text(json.dumps({"figures": figures}))
    return files


def release_sections(config: ExperimentConfig, splits: SplitResult, evaluated: EvaluationResult, formats, behaviour,
                     decision, out, figures: list[str]) -> list[str]:
    """Release decision, deploy formats, behavioural tests and error analysis; appends its figures."""
    if problem_of(config) == "classification":
        matrix = np.asarray(evaluated.metrics.get("test", {}).get("confusion_matrix", np.zeros((0, 0))))
        analysis = ("Most confused class pairs on the test split:\n\n" + cls_report.confused_pairs(matrix, config.labels)
                    if matrix.size else "No test predictions.")
    else:
        test = load_split_for(config, splits.manifests["test"], desc="decoding test")
        images = dict(zip(test.ids, test.images))
        analysis, extra_figures = error_analysis_section(evaluated.predictions_path, config.labels, images, out,
                                                         config.release.grid_examples,
                                                         lambda values, _labels: " ".join(str(int(v)) for v in values))
        figures.extend(extra_figures)
    return ["## Release decision", decision_section(decision),
            "## Deploy formats", formats_section(formats, decision),
            "## Behavioural tests", behaviour_section(behaviour, config.labels),
            "## Error analysis", analysis]


def publish_report(report: ReportFiles, run_id: str) -> None:
    """Prefect markdown artifact; figures are files beside the report, so the artifact says where."""
    from pathlib import Path

    from prefect.artifacts import create_markdown_artifact

    text = Path(report.markdown).read_text()
    text = text.replace("](loss_curve.png)", f"]({Path(report.markdown).parent / 'loss_curve.png'})")
    key = "".join(c if c.isalnum() else "-" for c in run_id.lower())[:100]
    create_markdown_artifact(key=f"report-{key}", markdown=text, description=f"doughflow report for {run_id}")


def publish_run(summary: dict) -> None:
    """The run's headline metrics as a Prefect table artifact and a link to its bundle, so the UI
    answers "how good is it and where is it" without opening files."""
    from pathlib import Path

    from prefect.artifacts import create_link_artifact, create_table_artifact

    key = "".join(c if c.isalnum() else "-" for c in summary["run_id"].lower())[:90]
    rows = [{"metric": name, "value": value} for name, value in summary.get("metrics", {}).items()
            if isinstance(value, (int, float, str)) or value is None]
    create_table_artifact(key=f"metrics-{key}", table=rows, description=f"headline metrics of {summary['run_id']}")
    bundle = Path(summary["bundle"]).resolve()
    create_link_artifact(key=f"bundle-{key}", link=bundle.as_uri(), link_text=str(bundle),
                         description=f"release bundle of {summary['run_id']} ({summary.get('release', {}).get('status', 'n/a')})")


report_task = compute_task(name="report")(build_report)
publish_run_task = compute_task(name="publish-run")(publish_run)
publish_report_task = compute_task(name="publish-report")(publish_report)
