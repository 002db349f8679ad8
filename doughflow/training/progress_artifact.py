"""Mirror training progress into a Prefect progress artifact while a job runs."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from doughflow.training.progress import read_progress

log = logging.getLogger(__name__)


@contextlib.contextmanager
def prefect_progress(out_dir: str, key: str, every_seconds: float = 5.0) -> Iterator[None]:
    """Inside a Prefect task run: a progress artifact (0-100 %) updated from rank 0's progress file.
    Outside one (plain function calls in tests) it does nothing."""
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        yield
        return
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    artifact_id = create_progress_artifact(progress=0.0, key=key, description="training progress (epochs and steps)")
    stop = threading.Event()
    last = {"value": -1.0}

    def push() -> None:
        progress = read_progress(out_dir)
        if progress and progress["fraction"] * 100 != last["value"]:
            last["value"] = progress["fraction"] * 100
            try:
                update_progress_artifact(artifact_id=artifact_id, progress=last["value"])
            except Exception as error:  # the UI view must never fail the training
                log.debug("progress artifact update failed: %s", error)

    def watch() -> None:
        while not stop.wait(every_seconds):
            push()

    thread = threading.Thread(target=watch, name="train-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_seconds + 1)
        push()
