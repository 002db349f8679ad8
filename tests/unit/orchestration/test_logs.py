"""Library log lines in the flow run's logs, read back through the Prefect API: a stage's library code
(the Dask client of the data stages), a ``tasks.*`` and a ``flows.*`` logger at INFO, and a line from
outside any run context in a worker's flow-run process (PREFECT__FLOW_RUN_ID)."""

from __future__ import annotations

import logging
import time
import warnings
from uuid import UUID

from doughflow.config import DaskConfig


def _run_logs(flow_run_id: UUID, wanted: list[str], timeout: float = 60) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
            messages = [f"{log.name} {log.level} {log.message}" for log in logs]
            if all(any(w in m for m in messages) for w in wanted) or time.monotonic() > deadline:
                return messages
            time.sleep(0.5)


def test_library_info_lines_reach_the_flow_runs_logs(prefect_api, monkeypatch):
    from prefect import flow

    from doughflow.data.dask_client import dask_client
    from doughflow.orchestration.stage_tasks import compute_task

    def probe(rows: int) -> int:
        logging.getLogger("tasks.probe").info("a tasks line")
        with dask_client(DaskConfig(dashboard_port=0), rows=rows):  # logs the cluster it starts, and its dashboard
            pass
        return rows

    probe_task = compute_task(name="log-probe")(probe)

    @flow(name="log-probe")
    def probe_flow() -> int:
        logging.getLogger("flows.probe").info("a flows line")
        return probe_task(10)

    state = probe_flow(return_state=True)
    assert state.is_completed()
    flow_run_id = state.state_details.flow_run_id
    wanted = [
        "doughflow.data.dask_client 20 10 rows: computing on an in-process cluster",
        "doughflow.data.dask_client 20 Dask dashboard: http://127.0.0.1:",
        "tasks.probe 20 a tasks line",
        "flows.probe 20 a flows line",
    ]
    messages = _run_logs(flow_run_id, wanted)
    for line in wanted:
        assert any(line in message for message in messages), (line, messages)

    # Outside any run context: silent (no Prefect warning per line) unless the process belongs to a flow run.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logging.getLogger("doughflow.probe").info("outside any run")
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", str(flow_run_id))
    logging.getLogger("doughflow.probe").info("from a helper thread of the run's process")
    assert any("from a helper thread" in m for m in _run_logs(flow_run_id, ["from a helper thread"]))
