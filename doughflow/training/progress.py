"""Training progress as a small JSON file that rank 0 rewrites, so whoever launched the job (the
Prefect task, possibly across a process boundary) can show it without talking to the ranks."""

from __future__ import annotations

import json
import os
from pathlib import Path

PROGRESS_FILE = "progress.json"


def write_progress(
    out_dir: str | Path, *, epoch: int, epochs: int, step: int, steps: int, loss: float | None, images_per_second: float
) -> None:
    fraction = min(1.0, (epoch + step / max(1, steps)) / max(1, epochs))
    record = {
        "fraction": fraction,
        "epoch": epoch + 1,
        "epochs": epochs,
        "step": step,
        "steps": steps,
        "loss": loss,
        "images_per_second": images_per_second,
    }
    path = Path(out_dir) / PROGRESS_FILE
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)  # atomic: a reader never sees half a file


def read_progress(out_dir: str | Path) -> dict | None:
    try:
        return json.loads((Path(out_dir) / PROGRESS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
