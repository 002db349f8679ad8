"""Deploy-formats stage (CoreML, int8) as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.formats import convert_formats

convert_formats_task = compute_task(name="deploy-formats")(convert_formats)
