"""Defaults every stage task shares, in one place."""

from __future__ import annotations

from functools import partial

from prefect import task
from prefect.cache_policies import NO_CACHE

# I/O stages retry transient failures; compute stages fail fast (a retry would repeat the same error).
io_task = partial(task, cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 10], retry_jitter_factor=0.5)
compute_task = partial(task, cache_policy=NO_CACHE)
