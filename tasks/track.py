"""Track stage as a Prefect task: the finished run in MLflow. Not retried by Prefect: MLflow's client
retries its own requests, and what still fails is reported without failing the run (see the stage)."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.track import open_tracking, track

open_tracking_task = compute_task(name="open-mlflow")(open_tracking)
track_task = compute_task(name="track-mlflow")(track)
