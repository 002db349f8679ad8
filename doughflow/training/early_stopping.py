"""Which epoch is best, and when to stop: judged by rank 0 at every epoch end, from the epoch's record.

The metric is ``train.early_stopping.metric`` when the epoch has it (validation metrics need a val
split) and the train loss otherwise. An epoch that improves on the best by more than ``min_delta``
becomes the best (the loop saves its weights as ``best_model.pt``, which is what ships); after
``patience`` epochs without one the run stops at that boundary. It never stops after the last epoch,
which ends the run anyway.
"""

from __future__ import annotations

import logging
import math

from doughflow.config import EarlyStoppingConfig
from doughflow.training.checkpoint import LoopState

log = logging.getLogger(__name__)


def is_better(score: float, best: float | None, mode: str, min_delta: float) -> bool:
    """Whether ``score`` beats ``best`` by more than ``min_delta``; a non-finite score never does."""
    if best is None or not math.isfinite(best):
        return math.isfinite(score)
    return score > best + min_delta if mode == "max" else score < best - min_delta


def judge_epoch(record: dict, state: LoopState, rule: EarlyStoppingConfig, epochs: int) -> tuple[bool, bool]:
    """(improved, stop) for the epoch ``record`` describes (its ``epoch`` counts from 1); updates ``state``."""
    epoch = record["epoch"]
    metric, mode = rule.metric, rule.mode
    if metric not in record:
        metric, mode = "train_loss", "min"
    score = float(record[metric])
    improved = is_better(score, state.best_score, mode, rule.min_delta)
    if improved:
        state.best_score, state.best_epoch, state.epochs_without_improvement = score, epoch, 0
    else:
        state.epochs_without_improvement += 1
    stop = bool(rule.patience) and state.epochs_without_improvement >= rule.patience and epoch < epochs
    if stop:
        log.info("early stopping after epoch %d: %s has not improved for %d epochs", epoch, metric, rule.patience)
    return improved, stop
