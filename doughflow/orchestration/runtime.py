"""Who is running: the current flow run's id, its root, its attempt, and the stages an earlier attempt
of it finished. Outside a flow run every answer is empty, so the callers work as plain functions."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.flows import FlowStateHook

log = logging.getLogger(__name__)


# flow run id -> its root's id. Prefect answers ``flow_run.root_flow_run_id`` by reading the flow run and
# its parent task run from the API at every level (4 requests inside prepare-data), and a run asks once per
# stage; a flow run's root never changes, so each is asked once.
_ROOTS: dict[str, str] = {}


def root_flow_run_id() -> str | None:
    """The outermost flow run's id (train -> train-pipeline -> prepare-data share it), or None."""
    from prefect.runtime import flow_run

    current = flow_run.id
    if not current:
        return None
    current = str(current)
    if current not in _ROOTS:
        _ROOTS[current] = str(flow_run.root_flow_run_id or current)
    return _ROOTS[current]


def flow_run_id() -> str | None:
    """The innermost flow run's id (a tuning trial's own sub-flow), or None outside a flow run."""
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def flow_run_ui_url() -> str | None:
    """The Prefect UI page of the outermost flow run, or None: outside a flow run, or on a temporary
    API (no PREFECT_API_URL: Prefect starts one for the run and stops it after, so no page would stay)."""
    from prefect.utilities.urls import url_for

    root = root_flow_run_id()
    return url_for("flow-run", obj_id=root) if root else None


def flow_run_attempt() -> int:
    """1 on a flow run's first attempt, 2 after one `prefect flow-run retry`, ...; 0 outside a flow run."""
    from prefect.runtime import flow_run

    return int(flow_run.run_count or 0) if flow_run.id else 0


def in_task_run() -> bool:
    from prefect.context import TaskRunContext

    return TaskRunContext.get() is not None


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
                children = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier))
                )
                frontier = [str(child.id) for child in children if str(child.id) not in runs]
                runs.extend(frontier)
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs)))
    except Exception as error:  # noqa: BLE001 - the record is still written, without those stages
        log.warning("could not read earlier attempts' stages from the Prefect API: %s", error)
        return found
    for task_run in task_runs:
        if task_run.state is not None and task_run.state.is_completed():
            found[task_run.name.rsplit("-", 1)[0]] = {
                "state": f"{task_run.state.name} (earlier attempt)",
                "seconds": round(task_run.total_run_time.total_seconds(), 3),
            }
    return found


def release_run_locks(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow state hook (completion, failure, crash, cancellation): release the run folders this flow run
    locked (doughflow.runlock), so a later flow in the same process, or another process, may use them."""
    from doughflow import runlock

    released = runlock.release_owned(str(getattr(flow_run, "id", "")))
    if released:
        log.debug("released run lock(s) %s", released)


# A flow that starts a run passes this as on_completion, on_failure, on_crashed and on_cancellation.
RELEASE_RUN_LOCKS: list[FlowStateHook[..., Any]] = [release_run_locks]
