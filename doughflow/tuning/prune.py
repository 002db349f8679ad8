"""The tuner's side of the epoch handshake: report each epoch to Optuna and answer continue or stop.

A thread beside the training (which blocks the task: in-process, or waiting on a launcher) reads
the records rank 0 publishes through ``doughflow.training.control``, hands the metric to a judge
(Optuna's ``trial.report`` + ``trial.should_prune``) and writes the verdict the trainer waits for.
The judge is a plain callable so tests can drive the trainer without a study.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from doughflow.training.control import read_epochs, send_verdict

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

Judge = Callable[[int, float], bool]  # (epoch counted from 1, metric value) -> stop?


class PruneMonitor:
    """Context manager: judges epochs while the block trains; ``pruned_after`` is the epoch it stopped."""

    def __init__(
        self, control_dir: str | Path, metric: str, judge: Judge, total_epochs: int, poll_s: float = 0.1
    ) -> None:
        self.control_dir = Path(control_dir)
        self.metric = metric
        self.judge = judge
        self.total_epochs = total_epochs
        self.poll_s = poll_s
        self.judged = 0
        self.values: dict[int, float] = {}
        self.pruned_after: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tune-prune-monitor", daemon=True)

    def __enter__(self) -> PruneMonitor:
        self.control_dir.mkdir(parents=True, exist_ok=True)
        for stale in (*self.control_dir.glob("epoch-*.json"), *self.control_dir.glob("verdict-*.json")):
            stale.unlink()  # a retry in the same folder must not read the last attempt's verdicts
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll()  # the last epoch is published without a wait: report it too

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        for record in read_epochs(self.control_dir, after=self.judged):
            epoch = int(record["epoch"])
            self.judged = epoch
            stop, reason = self._decide(epoch, record.get(self.metric))
            if stop and epoch < self.total_epochs:
                self.pruned_after = epoch
            send_verdict(self.control_dir, epoch, stop, reason)

    def _decide(self, epoch: int, value: float | None) -> tuple[bool, str]:
        if value is None or not math.isfinite(float(value)):
            return False, f"{self.metric} missing at epoch {epoch}: nothing to judge"
        self.values[epoch] = float(value)
        try:
            stop = bool(self.judge(epoch, float(value)))
        except Exception as error:  # a broken judge must not hang or kill the training
            log.warning("judging epoch %d failed (%s); training goes on", epoch, error)
            return False, f"judge failed: {error}"
        if stop:
            log.info("pruning after epoch %d: %s=%.4f", epoch, self.metric, value)
        return stop, "pruned" if stop else ""


def optuna_judge(trial: optuna.trial.Trial) -> Judge:
    """Report the epoch's value to the Optuna trial and ask its pruner."""

    def judge(epoch: int, value: float) -> bool:
        trial.report(value, epoch)
        return trial.should_prune()

    return judge
