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
    """The k images with the largest total absolute count error; ties broken by id for stability."""
    totals = np.abs(pred - target).sum(axis=1)
    order = sorted(range(len(ids)), key=lambda i: (-totals[i], ids[i]))[:k]
    return [WorstExample(ids[i], int(i), float(totals[i]), [float(v) for v in pred[i]], [int(v) for v in target[i]])
            for i in order]
