"""Report pieces for classification runs: metric tables, the confusion matrix (table and plot), the
most confused class pairs, and captions. Counting runs keep their own sections (report.py,
release_report.py); tasks/report.py picks by the task of the dataset adapter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from doughflow.reporting.numbers import human, percent
from doughflow.reporting.plots import pyplot
from doughflow.reporting.report import table

if TYPE_CHECKING:
    from doughflow.export.onnx_export import ParityReport


def headline_rows(test: dict, parity: ParityReport, images_per_second: float) -> list[list]:
    return [
        ["test accuracy", percent(test.get("accuracy"))],
        ["test macro-F1", human(test.get("macro_f1"))],
        ["ONNX parity max abs diff (logits)", human(parity.max_abs_diff)],
        ["ONNX argmax agreement", percent(parity.rounded_agreement)],
        ["training throughput", human(images_per_second, "img/s")],
    ]


def epoch_rows(history: dict) -> list[list]:
    return [
        [
            e["epoch"],
            e["train_loss"],
            e.get("val_loss", float("nan")),
            percent(e.get("val_accuracy")),
            e.get("lr"),
            e["seconds"],
        ]
        for e in history.get("epoch", [])
    ]


EPOCH_HEADERS = ["epoch", "train loss (cross-entropy)", "val loss", "val accuracy", "learning rate", "epoch time (s)"]


def metrics_section(metrics: dict, labels: list[str]) -> str:
    """Accuracy and macro-F1 per split, then precision/recall/F1 per class and the confusion matrix on test."""
    text = table(
        ["split", "images", "accuracy", "macro-F1"],
        [
            [split, m.get("n", 0), m.get("accuracy", float("nan")), m.get("macro_f1", float("nan"))]
            for split, m in metrics.items()
        ],
    )
    test = metrics.get("test", {})
    if test.get("per_class"):
        text += "\n\nPer class on the test split:\n\n"
        text += table(
            ["class", "precision", "recall", "F1", "support"],
            [
                [
                    label,
                    test["per_class"][label]["precision"],
                    test["per_class"][label]["recall"],
                    test["per_class"][label]["f1"],
                    test["per_class"][label]["support"],
                ]
                for label in labels
            ],
        )
    if test.get("confusion_matrix"):
        text += "\n\nConfusion matrix on the test split (rows: true class, columns: predicted class):\n\n"
        text += confusion_table(np.asarray(test["confusion_matrix"]), labels)
    return text


def confusion_table(matrix: np.ndarray, labels: list[str]) -> str:
    return table(
        ["true \\ predicted", *labels], [[label, *[int(v) for v in matrix[i]]] for i, label in enumerate(labels)]
    )


def confused_pairs(matrix: np.ndarray, labels: list[str], k: int = 8) -> str:
    """The off-diagonal cells with the most images: which classes the model mixes up, and how often."""
    support = matrix.sum(axis=1)
    pairs = sorted(
        (
            (int(matrix[i, j]), i, j)
            for i in range(len(labels))
            for j in range(len(labels))
            if i != j and matrix[i, j] > 0
        ),
        reverse=True,
    )[:k]
    if not pairs:
        return "No test image was misclassified."
    return table(
        ["true", "predicted as", "images", "share of the true class"],
        [[labels[i], labels[j], n, n / support[i] if support[i] else 0.0] for n, i, j in pairs],
    )


def confusion_plot(matrix: np.ndarray, labels: list[str], path: Path) -> Path:
    """Row-normalised heat map (recall per true class on the diagonal) with the image counts written in."""
    matrix = np.asarray(matrix)
    shares = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    size = 1.2 + 0.7 * len(labels)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                color="white" if shares[i, j] > 0.5 else "black",
                fontsize=8,
            )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def class_caption(probabilities: list[float], onehot: list[int], labels: list[str]) -> tuple[str, str]:
    """('circle 0.930', 'square') for a worst-example row: predicted class with its probability, true class."""
    k = int(np.argmax(probabilities))
    return f"{labels[k]} {human(float(probabilities[k]))}", labels[int(np.argmax(onehot))]
