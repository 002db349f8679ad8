"""What every stage task shares: retries, timeouts, and cache keys, in one place.

A stage listed in ``STAGE_SECTIONS`` is cached across runs: its key is the stage's code version,
the config sections it reads, and the content of its upstream results (which carry the data
fingerprint). The run id is not in the key, so a rerun with nothing changed skips every stage, and
a change to ``train`` reruns training and what follows but not the data stages. Results are
persisted to the storage the flow binds (``orchestration.result_storage``); a cached result
points at the files of the run that computed it, so runs never write into each other's folders.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from doughflow.caching import missing_outputs, stage_key

log = logging.getLogger(__name__)

# How many times one key may be recomputed after its files were deleted before it is overwritten.
MAX_CACHE_GENERATIONS = 8

# The config sections each cached stage reads. A stage not listed here is never cached
# (publishing artifacts, recording the run and enforcing the release must run every time).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "fetch": ("data.source", "data.rows_per_shard", "labels", "data.extra_sources"),
    "validate": ("labels", "data.id_column", "data.image_column", "data.group_column", "data.target_prefix", "data.max_count",
                 "data.adapter", "data.label_column", "data.import_module", "data.image_formats", "data.max_image_bytes",
                 "data.max_image_pixels", "data.subsample.near_dup", "data.subsample.cluster"),
    "subsample": ("data.subsample", "labels", "data.id_column", "data.image_column", "data.group_column",
                  "data.target_prefix"),
    "split": ("split", "data.group_column"),
    "train": ("train", "labels", "data.image_size", "data.id_column", "data.image_column", "data.target_prefix",
              "data.adapter"),
    "evaluate": ("evaluate", "labels", "data.image_size", "data.id_column", "data.image_column", "data.target_prefix",
                 "data.adapter"),
    "export-onnx": ("export", "labels", "data.image_size", "data.adapter"),
    "deploy-formats": ("release", "export", "labels", "data.image_size", "data.adapter"),
    "behaviour-tests": ("release", "labels", "data.image_size", "data.adapter", "train.augment"),
    "release-gates": ("release", "evaluate", "export", "data.adapter"),
    "report": ("*",),
    "package": ("*",),
}

# Upper bounds for stages that wait on the outside world; a hung read fails and is retried.
STAGE_TIMEOUTS: dict[str, float] = {"fetch": 4 * 3600.0}

NOT_IN_KEY = ("config", "paths")

# Final state and seconds of each stage, per root flow run, filled by task hooks in this process.
# (Prefect writes task runs to its database asynchronously, so reading them back right after a
# fast cached stage can miss it; the hooks see every state as it happens.)
STAGE_LOG: dict[str, dict[str, dict]] = {}


def _log_stage_state(task, task_run, state) -> None:
    started = task_run.start_time
    seconds = (state.timestamp - started).total_seconds() if started and state.timestamp else 0.0
    from prefect.runtime import flow_run

    # Keyed by the root flow run, so stages inside sub-flows (prepare-data) count for the run.
    run = flow_run.root_flow_run_id or task_run.flow_run_id
    STAGE_LOG.setdefault(str(run), {})[task.name] = {"state": state.name, "seconds": round(seconds, 3)}


# Fault-suite hook (tests/flows/test_faults.py): with DOUGHFLOW_FAULT_HOLD_STAGE in the environment at
# import, every stage gets an on-running hook; the stage it names (read when the stage starts) writes the
# file DOUGHFLOW_FAULT_HOLD_MARKER and waits to be killed, so a test can kill -9 the flow inside any stage
# at a known point. Outside that suite the variable is unset and no hook is installed.
FAULT_HOLD = "DOUGHFLOW_FAULT_HOLD_STAGE" in os.environ


def _hold_for_fault_test(task, task_run, state) -> None:
    if os.environ.get("DOUGHFLOW_FAULT_HOLD_STAGE") != task.name:
        return
    marker = Path(os.environ["DOUGHFLOW_FAULT_HOLD_MARKER"])
    staged = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    staged.write_text(f"{task.name} {os.getpid()}\n")
    staged.replace(marker)  # whole or absent: the test polls for the file, then reads it
    while True:
        time.sleep(1)


def cache_key_for(stage: str, parameters: dict[str, Any]) -> str | None:
    """The stage's cache key from its call parameters, or None (no caching) when caching is off."""
    config = parameters["config"]
    if stage not in STAGE_SECTIONS or not config.orchestration.cache:
        return None
    upstream = {name: value for name, value in parameters.items() if name not in NOT_IN_KEY}
    return f"doughflow-{stage}-{stage_key(stage, config, STAGE_SECTIONS[stage], upstream)}"


def live_cache_key(context, key: str | None, config) -> str | None:
    """``key``, or its next generation when the result stored under it names deleted files: the
    stage then recomputes (and stores under the new generation, which later runs find) instead of
    serving paths to nothing. A result that cannot be read is left to Prefect to handle."""
    if key is None or context is None or getattr(context, "result_store", None) is None:
        return key
    artifacts = Path(config.artifacts_dir)
    roots = (str(artifacts), str(artifacts.resolve()))
    for generation in range(MAX_CACHE_GENERATIONS):
        candidate = key if generation == 0 else f"{key}-g{generation}"
        try:
            if not context.result_store.exists(candidate):
                return candidate
            gone = missing_outputs(context.result_store.read(candidate).result, roots)
        except Exception as error:  # noqa: BLE001 - an unreadable record is Prefect's to report
            log.debug("cache record %s unreadable (%s): leaving it to Prefect", candidate, error)
            return candidate
        if not gone:
            return candidate
        log.info("cached result %s names %d deleted file(s) (e.g. %s): recomputing", candidate, len(gone), gone[0])
    return f"{key}-g{MAX_CACHE_GENERATIONS}"


def _stage_task(defaults: dict, name: str, **options):
    """``@task`` with the project's defaults, a cache key when the stage is cacheable, and
    persisted results so that a later run (or a retry) can pick the result up."""

    def decorate(fn):
        signature = inspect.signature(fn)
        settings = {**defaults, **options}
        if name in STAGE_SECTIONS:
            settings.pop("cache_policy", None)
            settings.setdefault("persist_result", True)

            def key_fn(context, parameters: dict) -> str | None:
                arguments = signature.bind_partial(**parameters).arguments
                return live_cache_key(context, cache_key_for(name, arguments), arguments["config"])

            settings["cache_key_fn"] = key_fn
        settings["on_completion"] = [*settings.get("on_completion", []), _log_stage_state]
        settings["on_failure"] = [*settings.get("on_failure", []), _log_stage_state]
        if FAULT_HOLD:
            settings["on_running"] = [*settings.get("on_running", []), _hold_for_fault_test]
        if name in STAGE_TIMEOUTS:
            settings.setdefault("timeout_seconds", STAGE_TIMEOUTS[name])
        return task(name=name, **settings)(fn)

    return decorate


# I/O stages retry transient failures with backoff and jitter; compute stages fail fast (a retry
# would repeat the same error), except where a stage says otherwise.
io_task = functools.partial(_stage_task, {"cache_policy": NO_CACHE, "retries": 3, "retry_delay_seconds": [2, 10, 30],
                                          "retry_jitter_factor": 0.5})
compute_task = functools.partial(_stage_task, {"cache_policy": NO_CACHE})
