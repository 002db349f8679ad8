"""Report sections of the release: decision and gates, deploy formats, behavioural tests, error analysis.

Plain functions from measured objects to Markdown (and one figure), so tasks/report.py only appends them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow.parquet as pq

from doughflow.config import label_key
from doughflow.evaluation.error_analysis import count_confusion, per_bucket_errors, per_class_errors, pick_examples
from doughflow.evaluation.metrics import rounded_counts
from doughflow.reporting.inert import md_text
from doughflow.reporting.numbers import human, human_bytes, percent, words
from doughflow.reporting.plots import example_grid
from doughflow.reporting.report import table

if TYPE_CHECKING:
    from doughflow.evaluation.behaviour import PropertyResult
    from doughflow.export.formats import DeployResult
    from doughflow.release.gates import ReleaseDecision


class BehaviourOutcome(Protocol):
    """What the behaviour stage hands the report (doughflow.stages.behaviour.BehaviourResult: the
    stages build on this package, so it is described here rather than imported)."""

    results: dict[str, list[PropertyResult]]  # format -> properties
    skipped: dict[str, str]  # format -> why it was not tested
    runtimes: dict[str, str]  # format -> what ran it
    cases: int
    skipped_properties: dict[str, str]  # property -> why it was not run


def decision_section(decision: ReleaseDecision) -> str:
    head = f"**{decision.status.upper()}**"
    if decision.reasons:
        head += ": " + "; ".join(md_text(reason) for reason in decision.reasons)
    if decision.excluded:
        head += "\n\nLeft out of the bundle: " + "; ".join(md_text(f"{k} ({v})") for k, v in decision.excluded.items())
    rows = [[g.fmt, g.name, g.status, g.detail] for g in decision.gates]
    return head + "\n\n" + table(["format", "gate", "result", "detail"], rows)


def formats_section(formats: DeployResult, decision: ReleaseDecision) -> str:
    by_name = {f.name: f for f in formats.formats}
    base = by_name.get("onnx") or by_name.get("torch")
    key = "accuracy" if base and "accuracy" in base.metrics else "exact_count_accuracy"  # classification or counting
    base_acc = base.metrics.get(key) if base and base.metrics else None
    base_latency = base.latency_ms if base else None
    rows = []
    for f in formats.formats:
        acc = f.metrics.get(key) if f.metrics else None
        parity = f.parity
        status = (
            "reference"
            if f.name == "torch"
            else "shipped"
            if f.name in decision.shipped and decision.released
            else decision.excluded.get(f.name, "not built: " + f.error if f.error else "in rejected bundle")
        )
        rows.append(
            [
                f.name,
                human_bytes(f.size_bytes) if f.size_bytes else "-",
                human(f.latency_ms),
                "-" if f.latency_ms is None or not base_latency else f"{human(base_latency / f.latency_ms)}x",
                percent(acc),
                "-"
                if acc is None or base_acc is None
                else f"{'+' if acc >= base_acc else '-'}{human(abs(acc - base_acc) * 100)} points",
                "-" if parity is None else human(parity.max_abs_diff),
                "-" if parity is None else percent(parity.rounded_agreement),
                f.parity_method or "-",
                status,
            ]
        )
    text = (
        f"{formats.parity_samples} held-out test images; latency is the median of batch-1 calls on this CPU; "
        "deltas are against fp32 ONNX.\n\n"
    )
    text += table(
        [
            "format",
            "size",
            "latency (ms)",
            "speed vs fp32",
            "accuracy" if key == "accuracy" else "exact-count acc",
            "change in acc",
            "max |diff|",
            "argmax equal" if key == "accuracy" else "rounded equal",
            "how measured",
            "status",
        ],
        rows,
    )
    worst_rows = []
    for f in formats.formats:
        if f.parity is None or f.name == "torch":
            continue
        for w in f.parity.worst[:3]:
            worst_rows.append(
                [
                    f.name,
                    w["sample_id"],
                    w["max_abs_diff"],
                    " ".join(human(float(v)) for v in w["torch"]),
                    " ".join(human(float(v)) for v in w["export"]),
                ]
            )
    if worst_rows:
        text += "\n\nWorst differences against torch (top 3 per format):\n\n"
        text += table(["format", "sample", "max |diff|", "torch", "format output"], worst_rows)
    return text


def behaviour_section(behaviour: BehaviourOutcome, labels: list[str]) -> str:
    skipped_props = behaviour.skipped_properties
    if not behaviour.results and not behaviour.skipped and not skipped_props:
        return "Behavioural tests are disabled (release.properties.enabled)."
    formats = list(behaviour.results)
    props: list[str] = []
    for results in behaviour.results.values():
        props += [r.prop for r in results if r.prop not in props]
    lookup = {(r.fmt, r.prop): r for results in behaviour.results.values() for r in results}
    rows = []
    for prop in props:
        any_result = next(lookup[(f, prop)] for f in formats if (f, prop) in lookup)
        cells = [prop, any_result.kind]
        for fmt in formats:
            r = lookup.get((fmt, prop))
            cells.append(
                "-"
                if r is None
                else f"{'pass' if r.passed else 'FAIL'} {r.failures}/{r.examples} (worst {human(r.worst_value)})"
            )
        rows.append(cells)
    if skipped_props:  # classification: held-out images under the invariances the augmentations promise
        text = (
            f"{behaviour.cases} cases of held-out test images under each transform. Cell: failures/examples and the "
            "worst |class probability change|; a case fails when the predicted class changes.\n\n"
        )
    else:
        text = (
            f"{behaviour.cases} generated pizzas (Hypothesis, fixed seed). Cell: failures/examples and the worst "
            "violation measure (|pred - true| for minimum functionality, |pred change| for invariance, rise "
            "shortfall or other change for directional).\n\n"
        )
    text += table(["property", "kind", *formats], rows)
    for fmt, how in behaviour.runtimes.items():
        text += f"\n- {md_text(fmt)}: run with {md_text(how)}"
    for fmt, why in behaviour.skipped.items():
        text += f"\n- {md_text(fmt)}: not tested ({md_text(why)})"
    if skipped_props:
        text += "\n\nProperties not run, with the reason:\n\n" + table(
            ["property", "why not"], [[prop, why] for prop, why in skipped_props.items()]
        )
    failing = [r for results in behaviour.results.values() for r in results if not r.passed]
    if failing:
        text += "\n\nWorst failing examples:\n\n"
        text += table(
            ["format", "property", "example"], [[r.fmt, r.prop, words(r.worst_example)] for r in failing[:10]]
        )
    return text


def error_analysis_section(
    predictions_path: str | Path,
    labels: list[str],
    test_images: dict[str, np.ndarray] | None,
    out_dir: Path,
    k: int,
    caption: Callable[[Iterable[float], list[str]], str],
) -> tuple[str, list[str]]:
    """Tables from the saved test predictions, and a grid of worst, best and corner-case images.
    ``test_images`` maps sample id -> pixels; ``caption(pred, true)`` formats counts."""
    table_data = pq.read_table(predictions_path).to_pydict()
    ids = [str(i) for i in table_data["sample_id"]]
    keys = [label_key(label) for label in labels]  # the prediction columns are named by the labels' keys
    pred = (
        np.stack([np.asarray(table_data[f"pred_{key}"], np.float64) for key in keys], axis=1)
        if ids
        else np.zeros((0, len(labels)))
    )
    true = (
        np.stack([np.asarray(table_data[f"true_{key}"], np.float64) for key in keys], axis=1)
        if ids
        else np.zeros((0, len(labels)))
    )
    if not ids:
        return "No test predictions.", []
    class_rows = [
        [r["label"], r["mae"], r["bias"], r["exact"], r["over_counted"], r["under_counted"]]
        for r in per_class_errors(pred, true, labels)
    ]
    bucket_rows = [[r["bucket"], r["n"], r["mae"], r["exact"]] for r in per_bucket_errors(pred, true)]
    rows, cols, matrix = count_confusion(pred, true)
    text = "Per topping (test split):\n\n"
    text += table(["topping", "MAE", "bias (pred - true)", "exact", "over-counted", "under-counted"], class_rows)
    text += "\n\nPer count bucket (per (image, topping) pair by true count; per image by toppings on the pizza):\n\n"
    text += table(["bucket", "n", "MAE (pair) / total abs error (image)", "exact"], bucket_rows)
    text += "\n\nRounded predicted (columns) vs true (rows) counts, all toppings pooled:\n\n"
    text += table(
        ["true \\ pred", *[str(c) for c in cols]], [[str(r), *[int(v) for v in matrix[i]]] for i, r in enumerate(rows)]
    )
    figures: list[str] = []
    picks = pick_examples(ids, pred, true, k)
    if picks and test_images:
        images = [test_images[p.sample_id] for p in picks if p.sample_id in test_images]
        captions = [
            f"{p.group}\n{p.sample_id}\npred {caption(rounded_counts(np.asarray(p.predicted)), labels)}"
            f"\ntrue {caption(p.true, labels)}"
            for p in picks
            if p.sample_id in test_images
        ]
        example_grid(images, captions, out_dir / "error_analysis.png")
        figures.append("error_analysis.png")
        text += (
            "\n\nWorst, best and corner-case test images; captions give rounded predicted and true counts in "
            f"label order ({', '.join(labels)}):\n\n![error analysis](error_analysis.png)"
        )
    return text, figures
