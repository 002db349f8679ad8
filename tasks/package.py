"""Package stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.package import package

package_task = compute_task(name="package")(package)
