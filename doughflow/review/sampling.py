"""Which test images a reviewer sees: a few of every kind, chosen so that an hour of review is informative.

A uniform sample would be mostly easy pizzas with few toppings. Instead the packet holds (1) a stratified
draw, some images for every (topping, true count) pair, so rare counts are seen; (2) the worst errors of
the torch model, where a human verdict matters most; (3) the images where the exported formats disagree
most with torch, because that is what ships. Each selected image keeps every reason it was chosen for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from doughflow.config import ReviewConfig


@dataclass
class Selected:
    index: int
    reasons: list[str] = field(default_factory=list)


def format_disagreement(reference: np.ndarray, others: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Per image, the largest |format - torch| over every format and topping, and the format that had it."""
    n = len(reference)
    if not others or n == 0:
        return np.zeros(n), [""] * n
    names = sorted(others)
    stacked = np.stack([np.abs(others[name] - reference).max(axis=1) for name in names], axis=1)
    worst = stacked.argmax(axis=1)
    return stacked.max(axis=1), [names[k] for k in worst]


def select_for_review(
    true: np.ndarray,
    pred: np.ndarray,
    labels: list[str],
    config: ReviewConfig,
    format_preds: dict[str, np.ndarray] | None = None,
) -> list[Selected]:
    """Indices into the test arrays, in packet order, each with why it was chosen. Deterministic in
    ``config.seed``; never more than ``config.max_samples``; never an image twice."""
    chosen: dict[int, Selected] = {}
    limit = config.max_samples

    def add(index: int, reason: str) -> None:
        if index in chosen:
            chosen[index].reasons.append(reason)
        elif len(chosen) < limit:
            chosen[index] = Selected(int(index), [reason])

    if config.worst_errors and len(true):
        error = np.abs(pred - true).sum(axis=1)
        for i in np.argsort(-error, kind="stable")[: config.worst_errors]:
            if error[i] > 0:
                add(int(i), f"worst error (sum |pred - true| = {error[i]:.2f})")
    if config.format_disagreements and format_preds:
        gap, which = format_disagreement(pred, format_preds)
        for i in np.argsort(-gap, kind="stable")[: config.format_disagreements]:
            add(int(i), f"formats disagree ({which[i]} differs from torch by {gap[i]:.3f})")
    rng = np.random.default_rng(config.seed)
    rounded_true = np.rint(true).astype(int)
    if config.per_stratum:
        for k, label in enumerate(labels):
            for count in np.unique(rounded_true[:, k]):
                members = np.flatnonzero(rounded_true[:, k] == count)
                already = [int(i) for i in members if i in chosen]
                for i in already[: config.per_stratum]:
                    chosen[i].reasons.append(f"stratum {label}={count}")
                fresh = [i for i in members if i not in chosen]
                take = max(0, config.per_stratum - len(already))
                for i in rng.permutation(fresh)[:take]:
                    add(int(i), f"stratum {label}={count}")
    return sorted(chosen.values(), key=lambda s: s.index)
