"""The model card: what a consumer must know before using the bundle, in one Markdown page.

It is generated from the same objects that gated the release, so what it claims is what was measured.
Texts that come from data or from failures (gate details, reasons) are escaped for Markdown; the intended
use and limitations are the config author's own Markdown and are kept as written.
"""

from __future__ import annotations

from doughflow.reporting.inert import md_code, md_text
from doughflow.reporting.report import table


def dataset_statistics(splits_targets: dict[str, "object"], labels: list[str], problem: str = "count") -> list[list]:
    """Rows per split: images, then mean count and share of zero per topping, or the share of each class
    (data after cleaning, dedup and any subsampling: exactly what the model was trained and tested on)."""
    rows = []
    for name, targets in splits_targets.items():
        n = len(targets)
        cells = [name, n]
        for k, _ in enumerate(labels):
            if n and problem == "classification":
                cells.append(f"{int(targets[:, k].sum())} ({targets[:, k].mean():.0%})")
            elif n:
                cells.append(f"{targets[:, k].mean():.2f} / {(targets[:, k] == 0).mean():.0%}")
            else:
                cells.append("-")
        rows.append(cells)
    return rows


def render_model_card(*, name: str, run_id: str, labels: list[str], data_fingerprint: str, config_hash: str,
                      image_size: int, dataset_rows: list[list], metrics: dict, decision, formats: list,
                      intended_use: str, limitations: list[str], bundle_files: dict[str, dict], problem: str = "count",
                      training: str | None = None) -> str:
    """The card; ``training`` is the recipe that ran (:meth:`doughflow.training.recipe.Recipe.describe`)."""
    status = decision.status.upper()
    lines = [f"# Model card: {name} ({md_code(run_id)})", "",
             f"**Release status: {status}**" + ("" if decision.released else " - do not deploy."), ""]
    if decision.reasons:
        lines += ["Reasons:", *[f"- {md_text(reason)}" for reason in decision.reasons], ""]
    if problem == "classification":
        model_text = (f"Classifies an RGB image resized to {image_size}x{image_size} as one of {', '.join(labels)}; output "
                      f"`logits[batch, {len(labels)}]`: softmax for probabilities, argmax for the class. ")
        stats_text = "Statistics after cleaning, deduplication and subsampling (cell: images of the class and their share):"
    else:
        model_text = (f"Counts {', '.join(labels)} on an RGB image resized to {image_size}x{image_size}; output "
                      f"`counts[batch, {len(labels)}]`, non-negative floats, round for an integer count. ")
        stats_text = ("Statistics after cleaning, deduplication and subsampling (cell: mean count / share of images "
                      "without it):")
    lines += ["## Model", "",
              model_text + "Preprocessing in `preprocessing.json`, labels in `labels.json`.", "",
              "## Intended use", "", intended_use, "",
              *(["## Training", "", f"Trained with: {training} (in full: `doughflow.recipe` in `ds_config.json`).", ""]
                if training else []),
              "## Data", "",
              f"Data fingerprint `{data_fingerprint}`, config hash `{config_hash}`.", "",
              stats_text, "",
              table(["split", "images", *labels], dataset_rows), "",
              "## Metrics", ""]
    if problem == "classification":
        metric_table = table(["split", "images", "accuracy", "macro-F1"],
                             [[split, m.get("n", 0), m.get("accuracy", float("nan")), m.get("macro_f1", float("nan"))]
                              for split, m in metrics.items()])
    else:
        metric_rows = [[split, m.get("n", 0), m.get("mae", float("nan")), m.get("exact_count_accuracy", float("nan")),
                        m.get("image_exact_accuracy", float("nan"))] for split, m in metrics.items()]
        metric_table = table(["split", "images", "MAE", "exact-count accuracy", "image exact accuracy"], metric_rows)
    headline = "accuracy" if problem == "classification" else "exact_count_accuracy"
    lines += [metric_table, "",
              "## Release gates", "",
              table(["format", "gate", "result", "detail"], [[g.fmt, g.name, g.status, g.detail] for g in decision.gates]),
              "", "## Formats", ""]
    format_rows = []
    for result in formats:
        if result.name == "torch":
            continue
        shipped = result.name in decision.shipped and decision.released
        where = result.bundle_name if any(f == result.bundle_name or f.startswith(result.bundle_name + "/")
                                          for f in bundle_files) else "-"
        note = "shipped" if shipped else decision.excluded.get(result.name, "not released" if not decision.released else "not built")
        format_rows.append([result.name, where, result.size_bytes,
                            "-" if result.latency_ms is None else f"{result.latency_ms:.2f}",
                            result.metrics.get(headline, "-") if result.metrics else "-", note])
    lines += [table(["format", "file", "bytes", "latency ms (batch 1, CPU)",
                     f"{'accuracy' if problem == 'classification' else 'exact-count acc'} (held-out)", "status"],
                    format_rows), "",
              "## Limitations", "", *[f"- {item}" for item in limitations]]
    skipped = [g for g in decision.gates if g.status == "skipped"]
    for gate in skipped:
        lines.append(f"- {md_text(gate.fmt)} {md_text(gate.name)} was not checked: {md_text(gate.detail)}")
    for fmt, reason in decision.excluded.items():
        lines.append(f"- {md_text(fmt)} is not shipped: {md_text(reason)}")
    lines += ["", "Verify the bundle before use: `python -m flows.verify BUNDLE_DIR`.", ""]
    return "\n".join(lines)
