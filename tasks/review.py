"""Review-packet stage as a Prefect task."""

from doughflow.orchestration.stage_tasks import compute_task
from doughflow.stages.review import review_packet

review_packet_task = compute_task(name="review-packet")(review_packet)
