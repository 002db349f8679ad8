"""Record stage: append the finished run to the run registry, with each stage's duration."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.registry import RunRecord, record_run
from doughflow.runs import RunPaths
from tasks.common import STAGE_LOG, compute_task

log = logging.getLogger(__name__)


def stage_runs() -> tuple[dict[str, float], dict[str, str]]:
    """Seconds and final state ("Completed", "Cached", ...) of each stage of the current flow run;
    empty outside a flow run, so the plain function also works in tests."""
    from prefect.runtime import flow_run

    run = flow_run.root_flow_run_id or flow_run.id
    log = STAGE_LOG.get(str(run), {}) if run else {}
    return {name: entry["seconds"] for name, entry in log.items()}, {name: entry["state"] for name, entry in log.items()}


def record(config: ExperimentConfig, paths: RunPaths, summary: dict, started: float, status: str) -> str:
    manifest_path = Path(summary["bundle"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    seconds, states = stage_runs()
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
        stage_seconds=seconds,
        stage_states=states,
    )
    record_run(config.registry_file(), entry)
    log.info("recorded run %s in %s", paths.run_id, config.registry_file())
    return config.registry_file()


record_task = compute_task(name="record-run")(record)
