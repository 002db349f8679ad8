"""Train stage as a Prefect task. A retry (or a rerun with the same run id) resumes from the latest
checkpoint; only crashes are retried: a rank that reported an error would fail the same way again."""

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.train import train
from doughflow.training.launch import TrainingCrashed


def retry_on_crash(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect retry condition: only a crash (no error report from any rank) is worth another try."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result is no crash we know how to resume
        return False
    return isinstance(error, TrainingCrashed)


train_task = compute_task(name="train", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_on_crash)(train)
