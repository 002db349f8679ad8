"""Record stage as a Prefect task: the finished run's row in the run registry."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.record import record

record_task = compute_task(name="record-run")(record)
