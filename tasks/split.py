"""Split stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.split import split

split_task = compute_task(name="split")(split)
