"""Validate stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.validate import validate

validate_task = compute_task(name="validate")(validate)
