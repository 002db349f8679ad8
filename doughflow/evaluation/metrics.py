"""Counting metrics: how far off, and how often exactly right, per topping and per split.

"Exact-count accuracy" is the share of (image, topping) pairs whose rounded prediction equals the
true count; "image exact accuracy" is the stricter share of images with every topping right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rounded_counts(pred: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(pred, 0, None)).astype(np.int64)


def count_metrics(pred: np.ndarray, target: np.ndarray, labels: list[str]) -> dict:
    if len(target) == 0:
        return {"n": 0}
    rounded = rounded_counts(pred)
    exact = rounded == target.astype(np.int64)
    error = np.abs(pred - target)
    return {
        "n": int(len(target)),
        "mae": float(error.mean()),
        "exact_count_accuracy": float(exact.mean()),
        "image_exact_accuracy": float(exact.all(axis=1).mean()),
        "per_topping": {
            label: {"mae": float(error[:, k].mean()), "exact_count_accuracy": float(exact[:, k].mean())}
            for k, label in enumerate(labels)
        },
    }


@dataclass
class WorstExample:
    sample_id: str
    index: int
    total_abs_error: float
    predicted: list[float]
    true: list[int]


def worst_examples(ids: list[str], pred: np.ndarray, target: np.ndarray, k: int) -> list[WorstExample]:
    """The k wrong images (some rounded count differs from the truth) with the largest total absolute
    count error; ties broken by id for stability. A right image is never "worst", however few are wrong."""
    totals = np.abs(pred - target).sum(axis=1)
    wrong = (rounded_counts(pred) != np.asarray(target).astype(np.int64)).any(axis=1) if len(ids) else np.zeros(0, bool)
    order = sorted((i for i in range(len(ids)) if wrong[i]), key=lambda i: (-totals[i], ids[i]))[:k]
    return [
        WorstExample(ids[i], int(i), float(totals[i]), [float(v) for v in pred[i]], [int(v) for v in target[i]])
        for i in order
    ]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def confusion_matrix(true_index: np.ndarray, pred_index: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (true_index, pred_index), 1)
    return matrix


def classification_metrics(logits: np.ndarray, onehot: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    A class never predicted has precision 0 and one absent from the split has recall 0 (and is left out of
    macro-F1 only when it is absent: it cannot be scored, while a class the model never predicts must count).
    """
    if len(onehot) == 0:
        return {"n": 0}
    true = onehot.argmax(axis=1)
    pred = logits.argmax(axis=1)
    matrix = confusion_matrix(true, pred, len(labels))
    per_class, f1s = {}, []
    for k, label in enumerate(labels):
        tp = int(matrix[k, k])
        predicted, support = int(matrix[:, k].sum()), int(matrix[k, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support:
            f1s.append(f1)
    return {
        "n": int(len(onehot)),
        "accuracy": float((true == pred).mean()),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def problem_metrics(problem: str, pred: np.ndarray, target: np.ndarray, labels: list[str]) -> dict:
    """The metrics of a problem: counting or classification (see doughflow.data.adapters)."""
    if problem == "classification":
        return classification_metrics(pred, target, labels)
    return count_metrics(pred, target, labels)


def headline_metric(problem: str) -> str:
    """The one number a table of formats or runs shows per row."""
    return "accuracy" if problem == "classification" else "exact_count_accuracy"


def worst_classified(ids: list[str], logits: np.ndarray, onehot: np.ndarray, k: int) -> list[WorstExample]:
    """The k misclassified images whose true class got the least probability; ``total_abs_error`` is
    1 - p(true), ``predicted`` the class probabilities and ``true`` the one-hot target."""
    probs = softmax(logits) if len(logits) else logits
    miss = 1.0 - (probs * onehot).sum(axis=1) if len(logits) else np.zeros(0)
    wrong = probs.argmax(axis=1) != np.asarray(onehot).argmax(axis=1) if len(logits) else np.zeros(0, bool)
    order = sorted((i for i in range(len(ids)) if wrong[i]), key=lambda i: (-miss[i], ids[i]))[:k]
    return [
        WorstExample(ids[i], int(i), float(miss[i]), [float(v) for v in probs[i]], [int(v) for v in onehot[i]])
        for i in order
    ]
