"""The model card: what a consumer must know before using the bundle, in one Markdown page.

It is generated from the same objects that gated the release, so what it claims is what was measured.
Texts that come from data or from failures (gate details, reasons) are escaped for Markdown; the `card:`
section (intended use, limitations) is the config author's own Markdown and is kept as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from doughflow.config import CardConfig, TrainConfig
from doughflow.reporting.inert import md_code, md_text
from doughflow.reporting.numbers import human, human_bytes, percent
from doughflow.reporting.report import table

if TYPE_CHECKING:
    from doughflow.export.formats import FormatResult
    from doughflow.release.gates import ReleaseDecision


def dataset_statistics(
    splits_targets: Mapping[str, np.ndarray], labels: list[str], problem: str = "count"
) -> list[list]:
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


def hyperparameter_rows(train: TrainConfig, epochs_run: int | None = None, world_size: int = 1) -> list[list]:
    """The training settings a consumer asks about when they retrain or compare models."""
    model = train.model
    augment = [name for name in ("rot90", "hflip", "vflip") if getattr(train.augment, name)]
    if train.augment.brightness:
        augment.append(f"brightness +-{human(train.augment.brightness)}")
    return [
        ["model", f"{model.name}, width {model.width}" + "".join(f", {k}={v}" for k, v in model.options.items())],
        ["epochs", f"{epochs_run} of {train.epochs}" if epochs_run is not None else train.epochs],
        [
            "batch",
            (
                f"{train.micro_batch_size} per process x {train.gradient_accumulation_steps} accumulation x "
                f"{world_size} process(es) = {train.micro_batch_size * train.gradient_accumulation_steps * world_size}"
            )
            if isinstance(train.micro_batch_size, int)
            else "chosen at run time (micro_batch_size: auto; see Training)",
        ],
        ["optimizer", f"AdamW, learning rate {human(train.learning_rate)}, weight decay {human(train.weight_decay)}"],
        [
            "schedule",
            f"{train.warmup_steps} warm-up steps, then {train.lr_schedule} to {percent(train.min_lr_ratio)} of the rate",
        ],
        ["gradient clipping", human(train.gradient_clipping) if train.gradient_clipping else "off"],
        ["precision", f"{train.precision}, DeepSpeed ZeRO-{train.zero_stage}"],
        ["augmentation", ", ".join(augment) or "none"],
        [
            "early stopping",
            f"on {train.early_stopping.metric} ({train.early_stopping.mode}), patience {train.early_stopping.patience}"
            if train.early_stopping.patience
            else f"off (best epoch by {train.early_stopping.metric} kept)",
        ],
        ["seed", str(train.seed)],  # an identifier, not a quantity: no digit grouping
    ]


def render_model_card(
    *,
    name: str,
    run_id: str,
    labels: list[str],
    data_fingerprint: str,
    config_hash: str,
    image_size: int,
    dataset_rows: list[list],
    metrics: dict,
    decision: ReleaseDecision,
    formats: list[FormatResult],
    card: CardConfig,
    bundle_files: dict[str, dict],
    problem: str = "count",
    hyperparameters: list[list] | None = None,
    training: str | None = None,
) -> str:
    """The card; ``training`` is the recipe that ran (:meth:`doughflow.training.recipe.Recipe.describe`)."""
    status = decision.status.upper()
    lines = [
        f"# Model card: {name} ({md_code(run_id)})",
        "",
        f"**Release status: {status}**" + ("" if decision.released else " - do not deploy."),
        "",
        table(
            ["field", "value"],
            [
                ["version", card.version or run_id],
                ["owner", card.owner],
                ["contact", card.contact or "not stated"],
                ["license", card.license],
                ["run", md_code(run_id)],
            ],
        ),
        "",
    ]
    if decision.reasons:
        lines += ["Reasons:", *[f"- {md_text(reason)}" for reason in decision.reasons], ""]
    if problem == "classification":
        model_text = (
            f"Classifies an RGB image resized to {image_size}x{image_size} as one of {', '.join(labels)}; output "
            f"`logits[batch, {len(labels)}]`: softmax for probabilities, argmax for the class. "
        )
        stats_text = (
            "Statistics after cleaning, deduplication and subsampling (cell: images of the class and their share):"
        )
    else:
        model_text = (
            f"Counts {', '.join(labels)} on an RGB image resized to {image_size}x{image_size}; output "
            f"`counts[batch, {len(labels)}]`, non-negative floats, round for an integer count. "
        )
        stats_text = (
            "Statistics after cleaning, deduplication and subsampling (cell: mean count / share of images without it):"
        )
    lines += [
        "## Model",
        "",
        model_text + "Preprocessing in `preprocessing.json`, labels in `labels.json`.",
        "",
        "## Intended use",
        "",
        card.intended_use,
        "",
        *(["Not meant for:", "", *[f"- {item}" for item in card.out_of_scope], ""] if card.out_of_scope else []),
        *(
            ["## Training", "", f"Trained with: {training} (in full: `doughflow.recipe` in `ds_config.json`).", ""]
            if training
            else []
        ),
        "## Data",
        "",
        f"Data fingerprint `{data_fingerprint}`, config hash `{config_hash}`.",
        "",
        stats_text,
        "",
        table(["split", "images", *labels], dataset_rows),
        "",
        "## Metrics",
        "",
    ]
    if problem == "classification":
        metric_table = table(
            ["split", "images", "accuracy", "macro-F1"],
            [
                [split, m.get("n", 0), m.get("accuracy", float("nan")), m.get("macro_f1", float("nan"))]
                for split, m in metrics.items()
            ],
        )
    else:
        metric_rows = [
            [
                split,
                m.get("n", 0),
                m.get("mae", float("nan")),
                m.get("exact_count_accuracy", float("nan")),
                m.get("image_exact_accuracy", float("nan")),
            ]
            for split, m in metrics.items()
        ]
        metric_table = table(["split", "images", "MAE", "exact-count accuracy", "image exact accuracy"], metric_rows)
    headline = "accuracy" if problem == "classification" else "exact_count_accuracy"
    lines += [metric_table, ""]
    if hyperparameters:
        lines += ["## Training hyperparameters", "", table(["setting", "value"], hyperparameters), ""]
    lines += [
        "## Release gates",
        "",
        table(["format", "gate", "result", "detail"], [[g.fmt, g.name, g.status, g.detail] for g in decision.gates]),
        "",
        "## Formats",
        "",
    ]
    format_rows = []
    for result in formats:
        if result.name == "torch":
            continue
        shipped = result.name in decision.shipped and decision.released
        where = (
            result.bundle_name
            if any(f == result.bundle_name or f.startswith(result.bundle_name + "/") for f in bundle_files)
            else "-"
        )
        note = (
            "shipped"
            if shipped
            else decision.excluded.get(result.name, "not released" if not decision.released else "not built")
        )
        format_rows.append(
            [
                result.name,
                where,
                human_bytes(result.size_bytes),
                human(result.latency_ms),
                percent(result.metrics.get(headline)) if result.metrics else "-",
                note,
            ]
        )
    lines += [
        table(
            [
                "format",
                "file",
                "size",
                "latency ms (batch 1, CPU)",
                f"{'accuracy' if problem == 'classification' else 'exact-count acc'} (held-out)",
                "status",
            ],
            format_rows,
        ),
        "",
        "## Limitations",
        "",
        *[f"- {item}" for item in card.limitations],
    ]
    skipped = [g for g in decision.gates if g.status == "skipped"]
    for gate in skipped:
        lines.append(f"- {md_text(gate.fmt)} {md_text(gate.name)} was not checked: {md_text(gate.detail)}")
    for fmt, reason in decision.excluded.items():
        lines.append(f"- {md_text(fmt)} is not shipped: {md_text(reason)}")
    lines += ["", "Verify the bundle before use: `python -m flows.verify BUNDLE_DIR`.", ""]
    return "\n".join(lines)
