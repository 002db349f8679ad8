"""Where a run's time goes: one row per stage plus the set-up around the flow, printed at the end of
every ``python -m flows.<name>`` and written into the run's report.

Each stage gets two numbers. *In stage* is its own code (Prefect's Running to its final state; 0 for
a Cached stage). *Wall* is the time since the stage before it ended, so it adds Prefect's work around
the stage (the task-run record, the cache lookup, writing the result, state changes, hooks) and the
rows add up to the run. Before the flow come the interpreter's start and the imports, then the start
of Prefect's temporary API when no ``PREFECT_API_URL`` is set; after the last stage, the flow's own
end. A no-change rerun spends nearly all of its time in these overheads, which is why they are rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from doughflow.orchestration.runtime import root_flow_run_id
from doughflow.orchestration.stage_tasks import STAGE_LOG


@dataclass(frozen=True)
class TimingRow:
    """One line of the table: a stage (with its final state) or a part of the run around the stages."""

    part: str
    wall: float  # seconds of the run charged to this row
    seconds: float | None = None  # in the stage's own code; None for the parts around the stages
    state: str = ""


def process_started_at() -> float:
    """When this process started (time.time() scale): the imports before any code of ours count too."""
    return psutil.Process(os.getpid()).create_time()


def stage_rows(run: str | None, since: float | None = None) -> list[TimingRow]:
    """The stages of root flow run ``run`` in the order they ended. ``since`` (time.time()) is when the
    flow was called: the first stage's wall counts from there; unknown, it is the stage's own seconds."""
    rows = []
    previous = since
    for name, entry in sorted(STAGE_LOG.get(run or "", {}).items(), key=lambda item: item[1]["ended"]):
        wall = entry["ended"] - previous if previous is not None else entry["seconds"]
        rows.append(TimingRow(name, max(0.0, wall), entry["seconds"], entry["state"]))
        previous = entry["ended"]
    return rows


def current_run_rows() -> list[TimingRow]:
    """The stages the current flow run has finished so far; empty outside a flow run."""
    return stage_rows(root_flow_run_id())


def latest_run() -> str | None:
    """The root flow run whose stage ended last in this process (after a flow call returns: that flow's)."""
    ended = {run: max(e["ended"] for e in stages.values()) for run, stages in STAGE_LOG.items() if stages}
    return max(ended, key=ended.__getitem__) if ended else None


def run_rows(
    process_started: float | None, api_seconds: float | None, flow_called: float, flow_returned: float, run: str | None
) -> list[TimingRow]:
    """The whole run, from the interpreter's start (when the process started for it) to the flow's
    return, as rows that add up to it."""
    rows = []
    if process_started is not None:
        before_api = flow_called - (api_seconds or 0.0)
        rows.append(TimingRow("start-up: interpreter, imports, config", max(0.0, before_api - process_started)))
    if api_seconds is not None:
        rows.append(TimingRow("Prefect temporary API start", api_seconds))
    stages = stage_rows(run, flow_called)
    rows += stages
    last_end = flow_called + sum(row.wall for row in stages)
    rows.append(TimingRow("flow end (sub-flow and run records)", max(0.0, flow_returned - last_end)))
    return rows


def format_rows(rows: list[TimingRow], title: str = "where the time went") -> str:
    """A fixed-width text table (stderr) with a total line."""
    width = max([len(row.part) for row in rows] + [len(title), 5])
    lines = [f"{title:<{width}}  {'state':<10} {'in stage':>9} {'wall s':>8}"]
    for row in rows:
        seconds = f"{row.seconds:9.1f}" if row.seconds is not None else " " * 9
        lines.append(f"{row.part:<{width}}  {row.state:<10} {seconds} {row.wall:8.1f}")
    lines.append(f"{'total':<{width}}  {'':<10} {'':>9} {sum(row.wall for row in rows):8.1f}")
    return "\n".join(lines)
