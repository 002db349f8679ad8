"""ONNX export stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.export import export

export_task = compute_task(name="export-onnx")(export)
