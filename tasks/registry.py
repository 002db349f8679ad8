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
    stages = dict(STAGE_LOG.get(str(run), {})) if run else {}
    if run and flow_run.run_count > 1:
        for name, entry in earlier_attempt_stages(str(run)).items():
            stages.setdefault(name, entry)
    return {name: e["seconds"] for name, e in stages.items()}, {name: e["state"] for name, e in stages.items()}


def earlier_attempt_stages(root_id: str) -> dict[str, dict]:
    """Stages that finished in an earlier attempt of this flow run, from the Prefect API. A
    `prefect flow-run retry` returns a sub-flow that already completed (prepare-data) without running
    it again, so its stages never reach this attempt's hooks. States read "Completed (earlier attempt)"."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    found: dict[str, dict] = {}
    try:
        with get_client(sync_client=True) as client:
            runs, frontier = [root_id], [root_id]
            while frontier:  # train -> train-pipeline -> prepare-data
                children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier)))
                frontier = [str(child.id) for child in children if str(child.id) not in runs]
                runs.extend(frontier)
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
    except Exception as error:  # noqa: BLE001 - the record is still written, without those stages
        log.warning("could not read earlier attempts' stages from the Prefect API: %s", error)
        return found
    for task_run in task_runs:
        if task_run.state is not None and task_run.state.is_completed():
            found[task_run.name.rsplit("-", 1)[0]] = {"state": f"{task_run.state.name} (earlier attempt)",
                                                      "seconds": round(task_run.total_run_time.total_seconds(), 3)}
    return found


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
