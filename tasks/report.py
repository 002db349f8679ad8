"""Report stage as a Prefect task, and the artifacts that show the run in the Prefect UI."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.report import build_report, publish_report, publish_run

report_task = compute_task(name="report")(build_report)
publish_report_task = compute_task(name="publish-report")(publish_report)
publish_run_task = compute_task(name="publish-run")(publish_run)
