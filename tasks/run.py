"""Run set-up and wrap-up: the run folder, where results persist, and the JSON lines a run ends with."""

from doughflow.orchestration.results import result_storage
from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.run import data_summary, run_summary, start_run

start_run_task = compute_task(name="start-run")(start_run)
result_storage_task = compute_task(name="result-storage")(result_storage)
run_summary_task = compute_task(name="run-summary")(run_summary)
data_summary_task = compute_task(name="data-summary")(data_summary)
