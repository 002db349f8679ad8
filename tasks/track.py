"""Track stage as a Prefect task: the finished run in MLflow. An I/O stage: a tracking server that
hiccups is retried, and a retry finds the run it already logged (doughflow/tracking/mlflow_run.py)."""

from doughflow.orchestration.stage_tasks import compute_task, io_task
from doughflow.stages.track import open_tracking, track

open_tracking_task = compute_task(name="open-mlflow")(open_tracking)
track_task = io_task(name="track-mlflow")(track)
