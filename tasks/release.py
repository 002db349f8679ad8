"""Release gates as a Prefect task, and the last task of a run that fails it when the release was rejected."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.release import enforce_release, release_gates

release_gates_task = compute_task(name="release-gates")(release_gates)
enforce_release_task = compute_task(name="enforce-release")(enforce_release)
