"""Retry transient I/O errors with exponential backoff and jitter.

Why here and not only Prefect task retries: a task retry repeats the whole fetch, while a flaky
object store or HTTP server fails single requests. Retrying the one file that failed keeps every
other file's work, and jitter stops many workers from retrying in lock step.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# OSErrors that say "this will never work" rather than "try again".
PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def _transient_types() -> tuple[type[BaseException], ...]:
    kinds: list[type[BaseException]] = [OSError, TimeoutError, ConnectionError]
    try:  # fsspec's HTTP filesystem raises aiohttp's errors (a ClientResponseError for a 503)
        import aiohttp

        kinds.append(aiohttp.ClientError)
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        pass
    return tuple(kinds)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, PERMANENT):
        return False
    status = getattr(error, "status", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 425, 429):
        return False  # a 404 or 403 stays one
    return isinstance(error, _transient_types())


def backoff_delay(attempt: int, base: float, rng: random.Random) -> float:
    """``base * 2**attempt``, scaled by a random factor in [0.5, 1.5) ("equal jitter")."""
    return base * (2**attempt) * (0.5 + rng.random())


def with_retries(
    action: Callable[[], T],
    *,
    retries: int,
    backoff_seconds: float,
    what: str,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; on a transient error wait and run it again, up to ``retries`` more times.
    The last error is re-raised with ``what`` (e.g. the file) in a note, so the message names it."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return action()
        except Exception as error:  # noqa: BLE001 - filtered by is_transient below
            if not is_transient(error) or attempt >= retries:
                if attempt:
                    error.add_note(f"{what}: gave up after {attempt + 1} attempts")
                raise
            delay = backoff_delay(attempt, backoff_seconds, rng)
            log.warning(
                "%s: %s: %s; retry %d/%d in %.2f s", what, type(error).__name__, error, attempt + 1, retries, delay
            )
            sleep(delay)
            attempt += 1
