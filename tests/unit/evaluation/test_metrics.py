"""Classification metrics agree with scikit-learn's, on hand-made and on drawn predictions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from doughflow.evaluation.metrics import (classification_metrics, count_metrics, headline_metric, softmax, problem_metrics,
                                          worst_classified)
import pytest
from doughflow.evaluation.metrics import worst_examples

LABELS = ["circle", "square", "triangle"]


def onehot(indices, k=3) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[np.asarray(indices)]


def test_hand_made_example():
    true = [0, 0, 1, 1, 2, 2]
    logits = onehot([0, 1, 1, 1, 0, 2]) * 3.0  # argmax: 0 1 1 1 0 2
    m = classification_metrics(logits, onehot(true), LABELS)
    assert m["n"] == 6 and m["accuracy"] == 4 / 6
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["square"] == {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    assert m["per_class"]["triangle"]["precision"] == 1.0 and m["per_class"]["triangle"]["recall"] == 0.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_agrees_with_sklearn(pairs):
    true = np.array([t for t, _ in pairs])
    pred = np.array([p for _, p in pairs])
    labels = ["a", "b", "c", "d"]
    m = classification_metrics(onehot(pred, 4) + 0.01 * np.arange(4), onehot(true, 4), labels)
    assert np.isclose(m["accuracy"], accuracy_score(true, pred))
    present = sorted(set(true))  # macro-F1 over the classes the split holds
    assert np.isclose(m["macro_f1"], f1_score(true, pred, labels=present, average="macro", zero_division=0))
    precision = precision_score(true, pred, labels=range(4), average=None, zero_division=0)
    recall = recall_score(true, pred, labels=range(4), average=None, zero_division=0)
    for k, label in enumerate(labels):
        assert np.isclose(m["per_class"][label]["precision"], precision[k])
        assert np.isclose(m["per_class"][label]["recall"], recall[k])
    assert m["confusion_matrix"] == confusion_matrix(true, pred, labels=range(4)).tolist()


def test_empty_split_and_task_dispatch():
    assert classification_metrics(np.zeros((0, 3)), np.zeros((0, 3)), LABELS) == {"n": 0}
    counts = np.array([[1.0, 2.0, 0.0]])
    assert problem_metrics("count", counts, counts, LABELS) == count_metrics(counts, counts, LABELS)
    assert "accuracy" in problem_metrics("classification", counts, onehot([1]), LABELS)
    assert headline_metric("classification") == "accuracy" and headline_metric("count") == "exact_count_accuracy"


def test_worst_classified_puts_the_least_probable_true_class_first_and_shows_only_mistakes():
    logits = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 0.1], [0.2, 0, 0]])
    worst = worst_classified(["a", "b", "c", "d"], logits, onehot([0, 2, 2, 1]), 3)
    assert [w.sample_id for w in worst] == ["b", "d"]  # c is right (argmax 2), however unsure
    assert np.isclose(worst[0].total_abs_error, 1 - softmax(logits)[1, 2])
    assert np.isclose(sum(worst[0].predicted), 1.0) and worst[0].true == [0, 0, 1]


def test_metrics_and_worst_examples():
    target = np.array([[1, 0], [2, 3], [0, 0]], np.float32)
    pred = np.array([[1.1, 0.2], [2.0, 1.9], [0.4, 0.0]], np.float32)
    metrics = count_metrics(pred, target, ["a", "b"])
    assert metrics["exact_count_accuracy"] == pytest.approx(5 / 6)
    assert metrics["image_exact_accuracy"] == pytest.approx(2 / 3)
    assert metrics["per_topping"]["b"]["exact_count_accuracy"] == pytest.approx(2 / 3)
    # z rounds to its truth: never "worst", although its error (0.4) is not zero
    assert [w.sample_id for w in worst_examples(["x", "y", "z"], pred, target, 3)] == ["y"]
