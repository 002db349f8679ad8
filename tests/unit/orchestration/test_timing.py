"""The table of where a run's time went: rows that add up to the run, in the order the stages ended."""

from __future__ import annotations

import pytest

from doughflow.orchestration.stage_tasks import STAGE_LOG
from doughflow.orchestration.timing import format_rows, latest_run, run_rows, stage_rows


@pytest.fixture
def logged_run():
    """Three stages of one run as the task hooks log them (ended out of dict order on purpose), alone in
    the log: runs of earlier tests in this process are set aside (they ended later than these)."""
    earlier = dict(STAGE_LOG)
    STAGE_LOG.clear()
    STAGE_LOG["run-a"] = {
        "split": {"state": "Cached", "seconds": 0.0, "ended": 1012.0},
        "fetch": {"state": "Completed", "seconds": 4.0, "ended": 1005.0},
        "train": {"state": "Completed", "seconds": 20.0, "ended": 1033.5},
    }
    STAGE_LOG["run-old"] = {"fetch": {"state": "Completed", "seconds": 1.0, "ended": 900.0}}
    yield "run-a"
    STAGE_LOG.clear()
    STAGE_LOG.update(earlier)


def test_each_stage_is_charged_the_wall_time_since_the_one_before(logged_run):
    rows = stage_rows(logged_run, since=1000.0)
    assert [(r.part, r.state, r.seconds, r.wall) for r in rows] == [
        ("fetch", "Completed", 4.0, 5.0),
        ("split", "Cached", 0.0, 7.0),
        ("train", "Completed", 20.0, 21.5),
    ]
    assert stage_rows(logged_run)[0].wall == 4.0  # flow start unknown: the stage's own seconds
    assert stage_rows("no-such-run") == []
    assert latest_run() == logged_run


def test_run_rows_add_up_from_process_start_to_flow_return(logged_run):
    rows = run_rows(process_started=990.0, api_seconds=3.0, flow_called=1000.0, flow_returned=1035.0, run=logged_run)
    assert rows[0].part.startswith("start-up") and rows[0].wall == 7.0
    assert rows[1].part == "Prefect temporary API start" and rows[1].wall == 3.0
    assert rows[-1].part.startswith("flow end") and rows[-1].wall == pytest.approx(1.5)
    assert sum(r.wall for r in rows) == pytest.approx(1035.0 - 990.0)
    no_start = run_rows(None, None, 1000.0, 1035.0, logged_run)  # a server was configured; not a fresh process
    assert [r.part for r in no_start][:1] == ["fetch"] and sum(r.wall for r in no_start) == pytest.approx(35.0)
    table = format_rows(rows)
    assert table.splitlines()[-1].split() == ["total", "45.0"]
    assert "train" in table and "Cached" in table
