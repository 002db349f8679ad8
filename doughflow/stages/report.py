"""Report stage: figures, Markdown and HTML for people, also published as a Prefect artifact.

Example photos (worst examples, removed near-duplicate pairs, the error-analysis grid) are drawn only
with ``report.include_images``; customer ids appear only as pseudonyms (:mod:`doughflow.privacy`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import problem_of
from doughflow.data.dedup.subsample import SubsampleResult
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SPLITS, SplitResult
from doughflow.data.validate import ValidationResult
from doughflow.export.formats import DeployResult
from doughflow.orchestration.artifacts import experiment_key, publish_link, publish_markdown, publish_table
from doughflow.orchestration.runtime import flow_run_ui_url
from doughflow.orchestration.timing import current_run_rows
from doughflow.privacy import pseudonymiser_for
from doughflow.release.gates import ReleaseDecision
from doughflow.reporting import classification as cls_report
from doughflow.reporting.inert import Md, md_code
from doughflow.reporting.numbers import human, human_seconds, percent
from doughflow.reporting.plots import example_grid, loss_curve
from doughflow.reporting.release_report import (
    behaviour_section,
    decision_section,
    error_analysis_section,
    formats_section,
)
from doughflow.reporting.report import ReportFiles, inline_figures, metrics_section, table, write_report
from doughflow.reporting.run_facts import hardware_line, learning_rate_curve, model_facts, previous_run_section
from doughflow.reporting.subsample import cluster_examples_figure, removed_pairs_figure, subsample_markdown
from doughflow.runs import RunPaths
from doughflow.stages.behaviour import BehaviourResult
from doughflow.stages.evaluate import EvaluationResult
from doughflow.stages.export import ExportResult
from doughflow.training.data import load_split_for
from doughflow.training.job import TrainResult
from doughflow.training.recipe import Recipe

log = logging.getLogger(__name__)


def _counts(values: Sequence[float], labels: list[str]) -> str:
    """``pepperoni 2, olive 1`` (whole topping names: cut ones read as other words), zeros left out."""
    shown = [f"{label} {int(v)}" for label, v in zip(labels, values) if int(v)]
    return ", ".join(shown) if shown else "none"


def _count_caption(sample_id: str, predicted: Sequence[float], true: Sequence[float], labels: list[str]) -> str:
    """A grid caption: the id, then ``topping predicted / true`` for each topping either one counts."""
    lines = [f"{label} {int(p)} / {int(t)}" for label, p, t in zip(labels, predicted, true) if int(p) or int(t)]
    return "\n".join([sample_id, "predicted / true", *(lines or ["no toppings / none"])])


def current_headline(
    config: ExperimentConfig, raw: DataManifest, trained: TrainResult, evaluated: EvaluationResult
) -> dict:
    """This run's headline metrics under the names the run registry records them."""
    test = evaluated.metrics.get("test", {})
    return {
        "test_exact_count_accuracy": test.get("exact_count_accuracy"),
        "test_image_exact_accuracy": test.get("image_exact_accuracy"),
        "test_mae": test.get("mae"),
        "test_accuracy": test.get("accuracy"),
        "test_macro_f1": test.get("macro_f1"),
        "train_seconds": trained.seconds,
        "data_fingerprint": raw.fingerprint,
        "config_hash": config.config_hash(),
    }


def training_sentence(config: ExperimentConfig, trained: TrainResult) -> str:
    """How training went, in one paragraph; a resume is mentioned only when there was one."""
    resumed = ""
    if trained.resumed_from_epoch or trained.resumed_from_step:
        resumed = (
            f" It resumed from a checkpoint after epoch {trained.resumed_from_epoch}"
            f" (step {trained.resumed_from_step})."
        )
    stopped = " Early stopping ended it." if trained.stopped_early else ""
    train = config.train
    if trained.recipe:  # the recipe that ran: global batch, effective learning rate, schedule
        recipe = Recipe.from_dict(trained.recipe).describe()
    else:
        recipe = (
            f"micro batch {train.micro_batch_size} x {train.gradient_accumulation_steps} accumulation x "
            f"{trained.world_size} process(es), learning rate {human(train.learning_rate)} ({train.lr_schedule} "
            f"after {train.warmup_steps} warm-up steps)"
        )
    return (
        f"DeepSpeed ZeRO-{train.zero_stage}, {train.precision}, {recipe}:"
        f" {trained.epochs_run} epoch(s) in {human_seconds(trained.seconds)} at"
        f" {human(trained.images_per_second, 'img/s')}; the model kept is epoch {trained.best_epoch}'s.{resumed}{stopped}"
        f" Training loss fell from {human(trained.first_loss)} to {human(trained.final_loss)}."
    )


def build_report(
    config: ExperimentConfig,
    paths: RunPaths,
    raw: DataManifest,
    validated: ValidationResult,
    deduped: SubsampleResult,
    splits: SplitResult,
    trained: TrainResult,
    evaluated: EvaluationResult,
    exported: ExportResult,
    formats: DeployResult | None = None,
    behaviour: BehaviourResult | None = None,
    decision: ReleaseDecision | None = None,
) -> ReportFiles:
    out = paths.stage("report")
    labels = config.label_names
    classify = problem_of(config) == "classification"
    loss_curve(
        trained.history,
        out / "loss_curve.png",
        loss_name="cross-entropy" if classify else "MSE",
        learning_rates=learning_rate_curve(config.train, trained.history),
    )

    figures = ["loss_curve.png"]
    worst = evaluated.worst
    photos = config.report.include_images  # false: no customer photo goes into the report or the bundle
    if worst and photos:
        test = load_split_for(config, splits.manifests["test"], desc="decoding test")
        index = {sample_id: i for i, sample_id in enumerate(test.ids)}
        images = [test.images[index[w["sample_id"]]] for w in worst]
        captions = (
            [
                _count_caption(w["sample_id"], np.rint(np.clip(w["predicted"], 0, None)).astype(int), w["true"], labels)
                for w in worst
            ]
            if not classify
            else [
                f"{w['sample_id']}\npred %s\ntrue %s" % cls_report.class_caption(w["predicted"], w["true"], labels)
                for w in worst
            ]
        )
        example_grid(images, captions, out / "worst_examples.png")
        figures.append("worst_examples.png")

    if photos and removed_pairs_figure(
        deduped, validated.manifest.paths(), config.data.id_column, config.data.image_column, out / "removed_pairs.png"
    ):
        figures.append("removed_pairs.png")
    if photos and cluster_examples_figure(
        deduped,
        validated.manifest.paths(),
        config.data.id_column,
        config.data.image_column,
        out / "cluster_examples.png",
    ):
        figures.append("cluster_examples.png")
    test_metrics = evaluated.metrics.get("test", {})
    reasons = ", ".join(f"{k}: {v}" for k, v in validated.reasons.items()) or "none"
    data_rows = [
        ["fetched", raw.rows, Md(f"{len(raw.shards)} shard(s) from {md_code(raw.source)}")],
        ["quarantined", -validated.rows_quarantined, reasons],
        *[
            [step.step, -(step.rows_in - step.rows_out), ", ".join(f"{k}: {v}" for k, v in step.reasons.items())]
            for step in deduped.steps
            if step.rows_in != step.rows_out
        ],
        *[
            [
                f"split {name}",
                splits.rows[name],
                f"{splits.groups[name]} "
                + (
                    "customers" if config.data.group_column == "customer_id" else f"groups ({config.data.group_column})"
                ),
            ]
            for name in SPLITS
        ],
    ]
    epoch_rows = [
        [
            e["epoch"],
            e["train_loss"],
            e.get("val_mae", float("nan")),
            percent(e.get("val_exact_count_accuracy")),
            e.get("lr"),
            e["seconds"],
        ]
        for e in trained.history.get("epoch", [])
    ]
    parity = exported.parity
    worst_rows = (
        [
            [
                w["sample_id"],
                _counts(np.rint(np.clip(w["predicted"], 0, None)).astype(int), labels),
                _counts(w["true"], labels),
                w["total_abs_error"],
            ]
            for w in worst
        ]
        if not classify
        else [
            [w["sample_id"], *cls_report.class_caption(w["predicted"], w["true"], labels), w["total_abs_error"]]
            for w in worst
        ]
    )
    if classify and test_metrics.get("confusion_matrix"):
        cls_report.confusion_plot(np.asarray(test_metrics["confusion_matrix"]), labels, out / "confusion_matrix.png")
        figures.append("confusion_matrix.png")
    prefect_link = flow_run_ui_url()
    model_text, _ = model_facts(config, problem_of(config))
    sections = [
        f"# doughflow run {md_code(paths.run_id)}",
        f"Experiment **{config.name}**: "
        + (
            f"classifying images as {', '.join(labels)} (dataset adapter `{config.data.adapter}`)"
            if classify
            else f"counting {', '.join(labels)}"
        )
        + f". Config hash `{config.config_hash()[:16]}`, data fingerprint `{raw.fingerprint[:16]}`. "
        + (
            f"Prefect flow run: [{prefect_link}]({prefect_link})."
            if prefect_link
            else "Prefect flow run: none kept (a temporary Prefect API; set PREFECT_API_URL to a server for a link)."
        ),
        "## Headline",
        table(["metric", "value"], cls_report.headline_rows(test_metrics, exported.parity, trained.images_per_second))
        if classify
        else table(
            ["metric", "value"],
            [
                ["test exact-count accuracy", percent(test_metrics.get("exact_count_accuracy"))],
                ["test image exact accuracy", percent(test_metrics.get("image_exact_accuracy"))],
                ["test MAE", human(test_metrics.get("mae"), "counts per topping")],
                ["ONNX parity max abs diff", human(parity.max_abs_diff)],
                ["training throughput", human(trained.images_per_second, "img/s")],
            ],
        ),
        "## Compared with the previous run",
        previous_run_section(
            config.registry_file(),
            config.name,
            paths.run_id,
            current_headline(config, raw, trained, evaluated),
            problem_of(config),
        ),
        "## Data",
        table(["step", "rows", "detail"], data_rows),
        f"Quarantined rows with their reasons: {md_code(validated.quarantine_path)}; "
        f"removed duplicates: {md_code(deduped.removed_path)}.",
        subsample_markdown(deduped, pseudonymise=pseudonymiser_for(config)),
        *(
            [
                "Removed near-duplicates (right) beside the row kept in their place (left):",
                "![removed pairs](removed_pairs.png)",
            ]
            if "removed_pairs.png" in figures
            else []
        ),
        *(
            [
                "Examples of the largest clusters the cluster cap sees, one row each:",
                "![cluster examples](cluster_examples.png)",
            ]
            if "cluster_examples.png" in figures
            else []
        ),
        "## Training",
        f"**Model.** {model_text}",
        f"**Hardware.** {hardware_line(config.train)}",
        training_sentence(config, trained),
        "Training loss per step, validation loss (or MAE) and accuracy per epoch, and the learning rate per step:",
        "![loss curve](loss_curve.png)",
        table(cls_report.EPOCH_HEADERS, cls_report.epoch_rows(trained.history))
        if classify
        else table(
            ["epoch", "train loss (MSE)", "val MAE (counts)", "val exact-count acc", "learning rate", "epoch time (s)"],
            epoch_rows,
        ),
        "## Metrics",
        cls_report.metrics_section(evaluated.metrics, labels)
        if classify
        else metrics_section(evaluated.metrics, labels),
        *(["![confusion matrix](confusion_matrix.png)"] if "confusion_matrix.png" in figures else []),
        "## ONNX parity",
        f"{parity.samples} test images, max |onnx - torch| {human(parity.max_abs_diff)} (tolerance {human(parity.atol)}), "
        f"{parity.agreement} equal on {percent(parity.rounded_agreement)} (required {percent(parity.min_rounded_agreement)}): "
        f"**{'passed' if parity.passed else 'FAILED'}**.",
        "## Worst test examples",
        "Misclassified test images: predicted class (its probability) vs true class, least probability on the true "
        "class first."
        if classify
        else "Test images with a wrong count: rounded predicted vs true counts (toppings with a count of 0 left out), largest "
        "total error first.",
        (
            table(
                ["sample", "predicted", "true", "1 - p(true)"]
                if classify
                else ["sample", "predicted", "true", "total abs error"],
                worst_rows,
            )
            if worst_rows
            else "None: every test image was right."
        ),
    ]
    if "worst_examples.png" in figures:
        sections.append("![worst examples](worst_examples.png)")
    elif not photos:
        sections.append("Example images are left out of this report (report.include_images: false).")
    if decision is not None and formats is not None and behaviour is not None:
        sections += release_sections(config, splits, evaluated, formats, behaviour, decision, out, figures)
    sections += timing_section()
    markdown_text = "\n\n".join(sections) + "\n"
    files = write_report(out, markdown_text, f"doughflow {paths.run_id}", figures)
    (out / "summary.json").write_text(json.dumps({"figures": figures}))
    return files


def release_sections(
    config: ExperimentConfig,
    splits: SplitResult,
    evaluated: EvaluationResult,
    formats: DeployResult,
    behaviour: BehaviourResult,
    decision: ReleaseDecision,
    out: Path,
    figures: list[str],
) -> list[str]:
    """Release decision, deploy formats, behavioural tests and error analysis; appends its figures."""
    if problem_of(config) == "classification":
        matrix = np.asarray(evaluated.metrics.get("test", {}).get("confusion_matrix", np.zeros((0, 0))))
        analysis = (
            "Most confused class pairs on the test split:\n\n" + cls_report.confused_pairs(matrix, config.label_names)
            if matrix.size
            else "No test predictions."
        )
    else:
        test = load_split_for(config, splits.manifests["test"], desc="decoding test")
        images = dict(zip(test.ids, test.images)) if config.report.include_images else None
        analysis, extra_figures = error_analysis_section(
            evaluated.predictions_path,
            config.label_names,
            images,
            out,
            config.release.grid_examples,
            lambda values, _labels: " ".join(str(int(v)) for v in values),
        )
        figures.extend(extra_figures)
    return [
        "## Release decision",
        decision_section(decision),
        "## Deploy formats",
        formats_section(formats, decision),
        "## Behavioural tests",
        behaviour_section(behaviour, config.label_names),
        "## Error analysis",
        analysis,
    ]


def timing_section() -> list[str]:
    """Seconds per stage up to this report (Prefect's work around each stage in the wall column); the
    stages after it and the run's start-up are in the table the command prints and in the run registry."""
    rows = current_run_rows()
    if not rows:
        return []
    cells = [
        [row.part, row.state, f"{row.seconds:.1f}" if row.seconds is not None else "", f"{row.wall:.1f}"]
        for row in rows
    ]
    return [
        "## Where the time went",
        "Seconds per stage until this report: *in stage* is the stage's own work (0 when its cached result "
        "was reused), *wall* adds Prefect's work around it. The stages after the report, the start-up and "
        "the whole run's total are in the table `python -m flows.train` prints at the end.",
        table(["stage", "state", "in stage (s)", "wall (s)"], cells),
    ]


def publish_report(config: ExperimentConfig, report: ReportFiles, run_id: str) -> None:
    """The report as a Prefect markdown artifact under the experiment's key (``pizza-report``: the UI
    keeps every run's report as that key's history), its figures embedded as data URIs: a file path
    or the bundle's location rendered as a broken image in the UI, data URIs render (checked in a real
    browser against a real server)."""
    text = inline_figures(Path(report.markdown).read_text(), Path(report.markdown).parent)
    publish_markdown(experiment_key(config.name, "report"), text, f"doughflow report of run `{run_id}`")


def publish_run(config: ExperimentConfig, summary: dict) -> None:
    """The run's headline metrics as a Prefect table artifact and a link to its bundle, so the UI
    answers "how good is it and where is it" without opening files. The link is the published copy
    (``orchestration.publish_url``) when there is one, else the run folder's bundle."""
    run_id = summary["run_id"]
    status = summary.get("release", {}).get("status", "n/a")
    rows = [
        {"metric": name, "value": value}
        for name, value in summary.get("metrics", {}).items()
        if isinstance(value, (int, float, str)) or value is None
    ]
    publish_table(experiment_key(config.name, "metrics"), rows, f"headline metrics of run `{run_id}` ({status})")
    published = summary.get("published")
    bundle = Path(summary["bundle"]).resolve()
    link = published or bundle.as_uri()
    publish_link(
        experiment_key(config.name, "bundle"),
        link,
        published or str(bundle),
        f"release bundle of run `{run_id}` ({status}{', published' if published else ', not published'})",
    )
