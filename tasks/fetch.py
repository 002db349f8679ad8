"""Fetch stage as a Prefect task: I/O, so transient failures are retried with backoff."""

from doughflow.orchestration.stage_tasks import io_task
from doughflow.stages.fetch import fetch

fetch_task = io_task(name="fetch")(fetch)
