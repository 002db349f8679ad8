"""Record stage: append the finished run to the run registry, with each stage's duration."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.registry import RunRecord, record_run
from doughflow.runs import RunPaths
from tasks.common import compute_task

log = logging.getLogger(__name__)


def stage_durations() -> dict[str, float]:
    """Seconds per task of the current Prefect flow run, read back from the Prefect API; empty
    outside a flow run, so the plain function also works in tests."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.runtime import flow_run

    if not flow_run.id:
        return {}
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    durations: dict[str, float] = {}
    for task_run in task_runs:
        name = task_run.name.rsplit("-", 1)[0]
        durations[name] = round(durations.get(name, 0.0) + task_run.total_run_time.total_seconds(), 3)
    return durations


def record(config: ExperimentConfig, paths: RunPaths, summary: dict, started: float, status: str) -> str:
    manifest_path = Path(summary["bundle"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    entry = RunRecord(
        run_id=paths.run_id,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        experiment=config.name,
        status=status,
        config_hash=config.config_hash(),
        data_fingerprint=manifest.get("data_fingerprint", ""),
        git_commit=manifest.get("git", {}).get("commit", "unknown"),
        bundle=summary.get("bundle"),
        total_seconds=round(time.time() - started, 2),
        config=config.model_dump(mode="json"),
        metrics=summary.get("metrics", {}),
        gates=manifest.get("release", {}),
        stage_seconds=stage_durations(),
    )
    record_run(config.registry_file(), entry)
    log.info("recorded run %s in %s", paths.run_id, config.registry_file())
    return config.registry_file()


record_task = compute_task(name="record-run")(record)
