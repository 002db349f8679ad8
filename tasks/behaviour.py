"""Behavioural-tests stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.behaviour import behaviour_tests

behaviour_task = compute_task(name="behaviour-tests")(behaviour_tests)
