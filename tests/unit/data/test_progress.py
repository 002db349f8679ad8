"""A data stage's progress: the fraction a Prefect progress artifact polls only rises, from 0 to 1, and
the tqdm bars appear on a terminal and nowhere else."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doughflow.data.progress import StageProgress

PHASES = ("sketching", "dedup", "writing")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 7)), max_size=12))
def test_fraction_rises_from_zero_to_one(steps):
    progress = StageProgress(PHASES, stream=io.StringIO())
    seen = [progress.fraction()]
    phase_index = -1
    for index, total, advances in sorted(steps):
        if index < phase_index:
            continue
        phase_index = index
        progress.start(PHASES[index], total)
        seen.append(progress.fraction())
        for _ in range(advances):
            progress.advance()
            seen.append(progress.fraction())
    progress.finish()
    seen.append(progress.fraction())
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert all(0.0 <= value <= 1.0 for value in seen)
    assert seen == sorted(seen)


def test_bars_show_on_a_terminal_only():
    terminal, log_file = Terminal(), io.StringIO()
    for stream in (terminal, log_file):
        progress = StageProgress(PHASES, stream=stream)
        progress.start("sketching", 4)
        for _ in progress.track(range(4)):
            pass
        progress.start("writing", 2)
        progress.advance(2)
        progress.finish()
    assert "sketching" in terminal.getvalue() and "4/4" in terminal.getvalue() and "writing" in terminal.getvalue()
    assert log_file.getvalue() == ""


def test_an_unknown_phase_is_refused_naming_the_phases():
    with pytest.raises(ValueError, match="unknown phase 'dedupe'.*sketching"):
        StageProgress(PHASES).start("dedupe", 1)
