"""Where the model is wrong: per topping, per true count, as a confusion of counts, and by example.

One accuracy number hides whether errors sit on crowded pizzas, on one topping or on empty ones;
these tables and the picked examples say where to look before the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from doughflow.evaluation.metrics import rounded_counts


@dataclass
class Pick:
    group: str  # worst | best | corner: <why>
    index: int
    sample_id: str
    predicted: list[float]
    true: list[int]
    total_abs_error: float


def per_class_errors(pred: np.ndarray, target: np.ndarray, labels: list[str]) -> list[dict]:
    rounded = rounded_counts(pred)
    true = target.astype(np.int64)
    rows = []
    for k, label in enumerate(labels):
        rows.append(
            {
                "label": label,
                "n": int(len(true)),
                "mae": float(np.abs(pred[:, k] - target[:, k]).mean()) if len(true) else 0.0,
                "bias": float((pred[:, k] - target[:, k]).mean()) if len(true) else 0.0,
                "exact": float((rounded[:, k] == true[:, k]).mean()) if len(true) else 0.0,
                "over_counted": int((rounded[:, k] > true[:, k]).sum()),
                "under_counted": int((rounded[:, k] < true[:, k]).sum()),
            }
        )
    return rows


def per_bucket_errors(pred: np.ndarray, target: np.ndarray) -> list[dict]:
    """Errors by true count of a (image, topping) pair, and by toppings per pizza (crowding)."""
    rounded = rounded_counts(pred).ravel()
    true = target.astype(np.int64).ravel()
    error = np.abs(pred - target).ravel()
    rows = []
    for value in np.unique(true):
        mask = true == value
        rows.append(
            {
                "bucket": f"true count {value}",
                "n": int(mask.sum()),
                "mae": float(error[mask].mean()),
                "exact": float((rounded[mask] == value).mean()),
            }
        )
    totals = target.sum(axis=1)
    edges = [(0, 0), (1, 3), (4, 6), (7, 9), (10, 10**6)]
    per_image_exact = (rounded_counts(pred) == target.astype(np.int64)).all(axis=1)
    per_image_error = np.abs(pred - target).sum(axis=1)
    for low, high in edges:
        mask = (totals >= low) & (totals <= high)
        if mask.any():
            name = (
                f"{low} toppings"
                if low == high
                else (f"{low}+ toppings" if high >= 10**6 else f"{low}-{high} toppings")
            )
            rows.append(
                {
                    "bucket": f"pizza with {name}",
                    "n": int(mask.sum()),
                    "mae": float(per_image_error[mask].mean()),
                    "exact": float(per_image_exact[mask].mean()),
                }
            )
    return rows


def count_confusion(pred: np.ndarray, target: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Rounded predicted (columns) vs true (rows) counts over all toppings."""
    rounded = rounded_counts(pred).ravel()
    true = target.astype(np.int64).ravel()
    rows = list(range(int(true.max()) + 1 if len(true) else 1))
    cols = list(range(max(int(rounded.max()) if len(rounded) else 0, rows[-1]) + 1))
    matrix = np.zeros((len(rows), len(cols)), dtype=np.int64)
    np.add.at(matrix, (true, rounded), 1)
    return rows, cols, matrix


def pick_examples(ids: list[str], pred: np.ndarray, target: np.ndarray, k: int) -> list[Pick]:
    """k worst and k best images by total absolute error, and corner cases: empty pizzas, the most
    crowded ones, and the ones whose predictions sit closest to a rounding boundary (least certain).
    Every image appears once, in the first group that takes it; "worst" takes only wrong images (some
    rounded count differs from the truth), so a model that gets everything right shows no "worst"."""
    if not len(ids) or k == 0:
        return []
    totals = np.abs(pred - target).sum(axis=1)
    wrong = (rounded_counts(pred) != np.asarray(target).astype(np.int64)).any(axis=1)
    order = sorted(range(len(ids)), key=lambda i: (-totals[i], ids[i]))

    def pick(group: str, index: int) -> Pick:
        return Pick(
            group,
            int(index),
            ids[index],
            [float(v) for v in pred[index]],
            [int(v) for v in target[index]],
            float(totals[index]),
        )

    chosen = [pick("worst", i) for i in [i for i in order if wrong[i]][:k]]
    used = {p.index for p in chosen}
    chosen += [pick("best", i) for i in [i for i in order[::-1] if i not in used][:k]]
    used = {p.index for p in chosen}
    corners: list[tuple[str, list[int]]] = []
    toppings = target.sum(axis=1)
    corners.append(("corner: empty", [i for i in np.argsort(toppings, kind="stable") if toppings[i] == 0]))
    corners.append(("corner: most crowded", list(np.argsort(-toppings, kind="stable"))))
    margin = np.abs(pred - np.floor(pred) - 0.5).min(axis=1)
    corners.append(("corner: near a rounding boundary", list(np.argsort(margin, kind="stable"))))
    per_corner = max(1, k // len(corners))
    for group, candidates in corners:
        taken = 0
        for i in candidates:
            if taken >= per_corner:
                break
            if int(i) not in used:
                chosen.append(pick(group, int(i)))
                used.add(int(i))
                taken += 1
    return chosen
