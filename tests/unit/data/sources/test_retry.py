"""Retries: transient errors are retried with growing, jittered delays; permanent ones are not."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doughflow.data.sources.retry import backoff_delay, is_transient, with_retries


@given(st.integers(0, 12), st.floats(0.0, 5.0), st.integers(0, 2**32))
def test_backoff_is_exponential_within_jitter_bounds(attempt, base, seed):
    delay = backoff_delay(attempt, base, random.Random(seed))
    assert base * 2**attempt * 0.5 <= delay <= base * 2**attempt * 1.5


def test_transient_errors_retry_until_success_and_permanent_ones_fail_at_once():
    assert is_transient(OSError("reset")) and is_transient(TimeoutError()) and not is_transient(FileNotFoundError("x"))
    assert not is_transient(ValueError("bad data"))
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert with_retries(flaky, retries=5, backoff_seconds=0.1, what="f", sleep=sleeps.append) == "ok"
    assert len(calls) == 4 and len(sleeps) == 3 and sleeps[0] < 0.15 * 2 and sleeps[2] >= 0.1 * 4 * 0.5

    def missing():
        calls.append(1)
        raise FileNotFoundError("gone")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        with_retries(missing, retries=5, backoff_seconds=0.1, what="f", sleep=sleeps.append)
    assert len(calls) == 1
    with pytest.raises(OSError) as error:
        with_retries(
            lambda: (_ for _ in ()).throw(OSError("down")),
            retries=2,
            backoff_seconds=0.0,
            what="file x",
            sleep=lambda s: None,
        )
    assert "file x: gave up after 3 attempts" in error.value.__notes__
