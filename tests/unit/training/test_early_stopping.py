"""Best epoch and early stopping, judged from epoch records alone."""

from __future__ import annotations

import math

import pytest

from doughflow.config import EarlyStoppingConfig
from doughflow.training.checkpoint import LoopState
from doughflow.training.early_stopping import is_better, judge_epoch


@pytest.mark.parametrize(
    "score, best, mode, min_delta, expected",
    [
        (0.5, None, "max", 0.0, True),
        (math.nan, None, "max", 0.0, False),
        (0.1, math.nan, "min", 0.0, True),
        (0.6, 0.5, "max", 0.0, True),
        (0.55, 0.5, "max", 0.1, False),
        (0.4, 0.5, "max", 0.0, False),
        (0.4, 0.5, "min", 0.0, True),
        (0.45, 0.5, "min", 0.1, False),
        (0.5, 0.5, "min", 0.0, False),
        (math.inf, 0.5, "max", 0.0, True),
        (math.nan, 0.5, "min", 0.0, False),
    ],
)
def test_is_better(score, best, mode, min_delta, expected):
    assert is_better(score, best, mode, min_delta) is expected


def test_patience_counts_epochs_without_improvement_and_stops():
    rule = EarlyStoppingConfig(metric="val_mae", mode="min", patience=2)
    state = LoopState()
    verdicts = [
        judge_epoch({"epoch": e, "val_mae": mae, "train_loss": 1.0}, state, rule, epochs=10)
        for e, mae in enumerate([0.9, 0.8, 0.85, 0.7, 0.75, 0.8], start=1)
    ]
    assert verdicts == [(True, False), (True, False), (False, False), (True, False), (False, False), (False, True)]
    assert (state.best_epoch, state.best_score, state.epochs_without_improvement) == (4, 0.7, 2)


def test_a_missing_metric_falls_back_to_falling_train_loss():
    rule = EarlyStoppingConfig(metric="val_exact_count_accuracy", mode="max", patience=1)
    state = LoopState()
    assert judge_epoch({"epoch": 1, "train_loss": 2.0}, state, rule, epochs=5) == (True, False)
    assert judge_epoch({"epoch": 2, "train_loss": 1.0}, state, rule, epochs=5) == (True, False)  # lower is better
    assert judge_epoch({"epoch": 3, "train_loss": 1.5}, state, rule, epochs=5) == (False, True)
    assert state.best_epoch == 2


def test_never_stops_after_the_last_epoch_or_without_patience():
    state = LoopState()
    last = EarlyStoppingConfig(metric="train_loss", mode="min", patience=1)
    judge_epoch({"epoch": 1, "train_loss": 1.0}, state, last, epochs=2)
    assert judge_epoch({"epoch": 2, "train_loss": 3.0}, state, last, epochs=2) == (False, False)
    patient = LoopState()
    never = EarlyStoppingConfig(metric="train_loss", mode="min", patience=0)
    outcomes = [judge_epoch({"epoch": e, "train_loss": float(e)}, patient, never, epochs=10) for e in range(1, 6)]
    assert [stop for _, stop in outcomes] == [False] * 5 and patient.epochs_without_improvement == 4
