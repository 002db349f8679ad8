"""Publish stage as a Prefect task: I/O, so transient failures are retried with backoff."""

from doughflow.orchestration.stage_tasks import io_task
from doughflow.stages.publish import publish

publish_bundle_task = io_task(name="publish-bundle")(publish)
