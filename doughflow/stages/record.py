"""Record stage: append the finished run to the run registry, with each stage's duration."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.release.gates import ReleaseDecision
from doughflow.orchestration.stage_tasks import stage_runs
from doughflow.registry import RunRecord, record_run
from doughflow.runs import RunPaths

log = logging.getLogger(__name__)


def record(config: ExperimentConfig, paths: RunPaths, summary: dict, decision: ReleaseDecision) -> str:
    """One registry row for the finished run; returns the registry file."""
    started = paths.started_at
    manifest_path = Path(summary["bundle"]) / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    seconds, states = stage_runs()
    entry = RunRecord(
        run_id=paths.run_id,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        experiment=config.name,
        status=decision.status,
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
        recipe=summary.get("recipe", {}),
    )
    record_run(config.registry_file(), entry)
    log.info("recorded run %s in %s", paths.run_id, config.registry_file())
    return config.registry_file()
