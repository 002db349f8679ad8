"""Subsample stage as a Prefect task, and its report as an artifact."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.subsample import publish_subsample, subsample_stage

subsample_task = compute_task(name="subsample")(subsample_stage)
publish_subsample_task = compute_task(name="publish-subsample")(publish_subsample)
