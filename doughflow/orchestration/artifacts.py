"""Prefect artifacts: the report, tables, links and live progress bars in the UI.

Each publisher does nothing outside a flow run, so the stages that call them stay plain functions
that tests run without a Prefect API. Keys are stable per experiment (``pizza-report``,
``pizza-metrics``: :func:`experiment_key`), never per run: Prefect shows every artifact of one key as
that key's history, so the UI answers "how did the last runs of this experiment go" on one page,
while each run's own page still lists the versions it created.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator
from typing import cast
from uuid import UUID

log = logging.getLogger(__name__)


def artifact_key(*parts: str, limit: int = 100) -> str:
    """Prefect artifact keys allow lower-case ASCII letters, digits and dashes only: anything else
    becomes a dash, runs of dashes one, and the ends are trimmed."""
    text = "-".join(parts).lower()
    key = "".join(c if c.isascii() and c.isalnum() else "-" for c in text)
    while "--" in key:
        key = key.replace("--", "-")
    return key.strip("-")[:limit].rstrip("-") or "doughflow"


def experiment_key(experiment: str, kind: str) -> str:
    """The stable key of one kind of artifact of an experiment: ``experiment_key("pizza", "report")`` is
    ``pizza-report``. The kind is kept whole (the experiment name is cut if the key would be too long)."""
    kind_key = artifact_key(kind)
    return f"{artifact_key(experiment, limit=99 - len(kind_key))}-{kind_key}"


def _in_flow_run() -> bool:
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def publish_markdown(key: str, markdown: str, description: str) -> None:
    if not _in_flow_run():
        return
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key=key, markdown=markdown, description=description)


def publish_table(key: str, rows: list[dict], description: str) -> None:
    if not _in_flow_run():
        return
    from prefect.artifacts import create_table_artifact

    create_table_artifact(key=key, table=rows, description=description)


def publish_link(key: str, link: str, link_text: str, description: str) -> None:
    if not _in_flow_run():
        return
    from prefect.artifacts import create_link_artifact

    create_link_artifact(key=key, link=link, link_text=link_text, description=description)


@contextlib.contextmanager
def progress_artifact(
    read_fraction: Callable[[], float | None], key: str, description: str, every_seconds: float = 5.0
) -> Iterator[None]:
    """Inside a Prefect task run: a progress artifact (0-100 %) updated from ``read_fraction`` every few
    seconds while the block runs (e.g. rank 0's progress file). Outside one it does nothing."""
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        yield
        return
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    artifact_id = cast(UUID, create_progress_artifact(progress=0.0, key=key, description=description))  # sync here
    stop = threading.Event()
    last = {"value": -1.0}

    def push() -> None:
        fraction = read_fraction()
        if fraction is not None and fraction * 100 != last["value"]:
            last["value"] = fraction * 100
            try:
                update_progress_artifact(artifact_id=artifact_id, progress=last["value"])
            except Exception as error:  # noqa: BLE001 - the UI view must never fail the work it shows
                log.debug("progress artifact update failed: %s", error)

    def watch() -> None:
        while not stop.wait(every_seconds):
            push()

    # In this context's copy: Prefect's settings (the API URL of a temporary API) live in context
    # variables, and a bare thread saw none, so Prefect started a second temporary server for it.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(watch,), name=f"progress-{key}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every_seconds + 1)
        push()
