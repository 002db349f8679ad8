"""Progress through the phases of a data stage (sketching, dedup, writing), for the people watching it.

A stage over millions of rows runs for many minutes inside one task; without this the Prefect UI
and the terminal showed nothing between "subsample started" and its result. Each phase is a tqdm bar
when stderr is a terminal (tqdm's ``disable=None``: no bar in a log file or a worker's captured
output), and :meth:`StageProgress.fraction` is the share of the whole stage done, which a Prefect
progress artifact polls from another thread (``doughflow.orchestration.artifacts.progress_artifact``).
Phases count equally: their lengths differ run to run, and a bar that moves steadily matters more
here than a precise estimate.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from tqdm import tqdm


class StageProgress:
    """``start(phase, total)``, then ``advance()`` per unit done; phases not in ``phases`` are refused."""

    def __init__(self, phases: Sequence[str], stream: TextIO | None = None, disable: bool | None = None) -> None:
        if not phases:
            raise ValueError("a stage needs at least one phase")
        self.phases = list(phases)
        self.stream = stream
        self.disable = disable
        self._lock = threading.Lock()
        self._index = -1
        self._done = 0
        self._total = 0
        self._bar: Any = None
        self._high = 0.0

    def start(self, phase: str, total: int) -> None:
        """Begin ``phase`` (one of ``phases``, in order or skipping some) with ``total`` units."""
        if phase not in self.phases:
            raise ValueError(f"unknown phase {phase!r}: this stage has {self.phases}")
        with self._lock:
            self._close_bar()
            self._index, self._done, self._total = self.phases.index(phase), 0, max(0, int(total))
            self._bar = tqdm(
                total=self._total,
                desc=phase,
                unit="part",
                file=self.stream or sys.stderr,
                disable=self.disable,
                mininterval=1.0,
                leave=True,
            )

    def advance(self, units: int = 1) -> None:
        with self._lock:
            self._done = min(self._total, self._done + units)
            if self._bar is not None:
                self._bar.update(units)

    def track(self, items: Iterable[Any]) -> Iterable[Any]:
        """Yield ``items``, advancing once per item."""
        for item in items:
            yield item
            self.advance()

    def finish(self) -> None:
        """The stage is done: fraction 1.0 and the last bar closed."""
        with self._lock:
            self._close_bar()
            self._index, self._done, self._total = len(self.phases) - 1, 1, 1

    def fraction(self) -> float:
        """Share of the stage done, 0.0 to 1.0: finished phases plus the current one's share. It never
        falls (a phase started again, or with more units than the one before, does not move a bar back)."""
        with self._lock:
            if self._index >= 0:
                within = self._done / self._total if self._total else 1.0
                self._high = max(self._high, min(1.0, (self._index + within) / len(self.phases)))
            return self._high

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
