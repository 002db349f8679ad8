"""Evaluate stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.evaluate import evaluate

evaluate_task = compute_task(name="evaluate")(evaluate)
