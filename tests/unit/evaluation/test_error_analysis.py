"""Error analysis tables and example picks on small hand-made predictions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from doughflow.evaluation.error_analysis import count_confusion, per_bucket_errors, per_class_errors, pick_examples

TRUE = np.array([[0, 0], [1, 2], [3, 1], [2, 2], [0, 1]], np.float64)
PRED = np.array([[0.1, 0.0], [1.2, 1.4], [2.2, 1.0], [2.0, 2.9], [0.0, 1.1]], np.float64)


def test_per_class_counts_over_and_under():
    rows = {r["label"]: r for r in per_class_errors(PRED, TRUE, ["a", "b"])}
    assert rows["a"]["under_counted"] == 1 and rows["a"]["over_counted"] == 0  # 2.2 -> 2 for a true 3
    assert rows["b"]["over_counted"] == 1 and rows["b"]["under_counted"] == 1
    assert rows["a"]["exact"] == 0.8


def test_buckets_by_true_count_and_crowding():
    rows = {r["bucket"]: r for r in per_bucket_errors(PRED, TRUE)}
    assert rows["true count 3"]["n"] == 1 and rows["true count 3"]["exact"] == 0.0
    assert rows["pizza with 0 toppings"]["n"] == 1 and rows["pizza with 0 toppings"]["exact"] == 1.0
    assert rows["pizza with 4-6 toppings"]["n"] == 2 and rows["pizza with 1-3 toppings"]["n"] == 2


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (6, 3), elements=st.floats(0, 5)), arrays(np.int64, (6, 3), elements=st.integers(0, 4)))
def test_confusion_counts_every_pair_once(pred, true):
    rows, cols, matrix = count_confusion(pred, true.astype(np.float64))
    assert matrix.sum() == pred.size
    assert matrix.shape == (len(rows), len(cols))
    assert np.trace(matrix[:, : len(rows)]) == int((np.rint(pred) == true).sum())


def test_picks_worst_best_and_corners_without_repeats():
    ids = [f"s{i}" for i in range(len(TRUE))]
    picks = pick_examples(ids, PRED, TRUE, k=1)
    groups = [p.group for p in picks]
    assert groups[:2] == ["worst", "best"]
    assert picks[0].sample_id == "s3"  # total error 0.9, the largest
    assert len({p.index for p in picks}) == len(picks)
    assert any(g.startswith("corner") for g in groups)
    assert pick_examples([], PRED[:0], TRUE[:0], 3) == []


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, (9, 2), elements=st.floats(0, 4)),
    arrays(np.int64, (9, 2), elements=st.integers(0, 3)),
    st.integers(1, 6),
)
def test_every_image_is_shown_once_and_worst_only_when_wrong(pred, true, k):
    ids = [f"s{i}" for i in range(len(true))]
    picks = pick_examples(ids, pred, true.astype(np.float64), k)
    assert len({p.index for p in picks}) == len(picks)
    wrong = (np.rint(np.clip(pred, 0, None)).astype(np.int64) != true).any(axis=1)
    assert all(wrong[p.index] for p in picks if p.group == "worst")
    assert sum(p.group == "worst" for p in picks) == min(k, int(wrong.sum()))
