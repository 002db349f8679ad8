"""A file handshake between rank 0 and an outside judge (the tuner) at every epoch boundary.

Rank 0 publishes each epoch's record (train loss, validation metrics) into a control folder and,
before the next epoch starts, waits for the judge's verdict on it: continue or stop. Files work the
same whether the trainer runs in the task's process or in ranks started by a launcher, and the wait
makes the stop land exactly at the epoch the judge decided on (a file polled "some time later" would
let the next epoch run). A judge that never answers costs ``timeout_s`` per epoch, not a hung run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

VERDICT_TIMEOUT_S = 300.0


def _write_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, default=lambda v: None))
    tmp.replace(path)  # a reader never sees half a file


def _epoch_path(control_dir: Path, epoch: int) -> Path:
    return control_dir / f"epoch-{epoch:05d}.json"


def _verdict_path(control_dir: Path, epoch: int) -> Path:
    return control_dir / f"verdict-{epoch:05d}.json"


def publish_epoch(control_dir: str | Path, record: dict) -> None:
    """Rank 0: the finished epoch's record (its ``epoch`` key counts from 1)."""
    control_dir = Path(control_dir)
    control_dir.mkdir(parents=True, exist_ok=True)
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    _write_atomic(_epoch_path(control_dir, int(record["epoch"])), clean)


def await_verdict(
    control_dir: str | Path, epoch: int, timeout_s: float = VERDICT_TIMEOUT_S, poll_s: float = 0.05
) -> bool:
    """Rank 0: True when the judge says stop after ``epoch``. No verdict in time: keep training."""
    path = _verdict_path(Path(control_dir), epoch)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return bool(json.loads(path.read_text())["stop"])
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() >= deadline:
            log.warning("no verdict on epoch %d in %s after %.0f s; training goes on", epoch, control_dir, timeout_s)
            return False
        time.sleep(poll_s)


def read_epochs(control_dir: str | Path, after: int = 0) -> list[dict]:
    """The judge: published epoch records with ``epoch > after``, in order."""
    control_dir = Path(control_dir)
    records = []
    for path in sorted(control_dir.glob("epoch-*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if int(record["epoch"]) > after:
            records.append(record)
    return records


def send_verdict(control_dir: str | Path, epoch: int, stop: bool, reason: str = "") -> None:
    """The judge: answer the record of ``epoch``."""
    _write_atomic(_verdict_path(Path(control_dir), epoch), {"epoch": epoch, "stop": stop, "reason": reason})
