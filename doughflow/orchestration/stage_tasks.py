"""The stage task decorator: retries, timeouts and cache keys every stage shares, in one place.

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
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from doughflow.caching import library_versions, missing_outputs, stage_key, user_module_sources
from doughflow.config import ExperimentConfig
from doughflow.orchestration.logs import route_library_logs
from doughflow.orchestration.results import RESULT_SERIALIZER, UntrustedResultError, matches, read_trusted
from doughflow.orchestration.runtime import earlier_attempt_stages, flow_run_attempt, root_flow_run_id

log = logging.getLogger(__name__)

# Every process that defines the stage tasks runs flows: the library's INFO lines go to the run's logs.
route_library_logs()

# How many times one key may be recomputed after its files were deleted before it is overwritten.
MAX_CACHE_GENERATIONS = 8

# What the dataset adapter reads (every stage that asks which problem it solves, or which columns are
# the targets, reads these): tests/flows/test_train_flow.py traces the fields each stage reads during a
# real run and fails on any outside its sections.
ADAPTER_FIELDS = (
    "labels",
    "data.adapter",
    "data.import_module",
    "data.target_prefix",
    "data.max_count",
    "data.label_column",
)
COLUMNS = ("data.id_column", "data.image_column")
# Read by stages without changing any result, never part of a key: where the data stages compute
# (``dask``), and the experiment name, which only names the Prefect artifacts a stage publishes while
# it runs (``pizza-subsample-progress``); two experiments with the same data share the cached result.
KEY_EXEMPT_FIELDS = ("dask", "name")

# The config sections each cached stage reads. A stage not listed here is never cached
# (publishing artifacts, recording the run and enforcing the release must run every time).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "fetch": (
        "data.source",
        "data.rows_per_shard",
        "data.image_size",
        "data.extra_sources",
        "data.label_defaults",
        "data.text_columns",
        *ADAPTER_FIELDS,
        *COLUMNS,
    ),  # the adapter's modality: text columns read as text
    "validate": (
        *ADAPTER_FIELDS,
        *COLUMNS,
        "data.group_column",
        "data.text_columns",
        "data.max_text_chars",
        "data.image_formats",
        "data.max_image_bytes",
        "data.max_image_pixels",
        "data.subsample.near_dup",
        "data.subsample.cluster",
    ),
    "subsample": ("data.subsample", *ADAPTER_FIELDS, *COLUMNS, "data.group_column", "data.text_columns"),
    "split": ("split", "data.group_column", "data.id_column"),
    "train": ("train", *ADAPTER_FIELDS, *COLUMNS, "data.image_size"),
    "evaluate": ("evaluate", "train.model", *ADAPTER_FIELDS, *COLUMNS, "data.image_size"),
    "export-onnx": ("export", "train.model", *ADAPTER_FIELDS, *COLUMNS, "data.image_size"),
    "deploy-formats": ("release", "export", "train.model", *ADAPTER_FIELDS, *COLUMNS, "data.image_size"),
    "behaviour-tests": (
        "release",
        "train.model",
        "train.augment",
        *ADAPTER_FIELDS,
        *COLUMNS,
        "data.image_size",
        "data.source",
    ),
    "release-gates": ("release", "evaluate", "export", *ADAPTER_FIELDS),
    "report": ("*",),
    "package": ("*",),
}

# The libraries whose output each cached stage depends on: an upgrade reruns the stage. (Prefect,
# Dask, numpy and the like change no result we keep; they are recorded in the bundle manifest.)
STAGE_LIBRARIES: dict[str, tuple[str, ...]] = {
    "fetch": ("pyarrow",),
    "validate": ("pyarrow",),
    "subsample": ("pyarrow",),
    "split": ("pyarrow",),
    "train": ("torch", "deepspeed", "pyarrow"),
    "evaluate": ("torch", "pyarrow"),
    "export-onnx": ("torch", "onnx", "onnxscript", "onnxruntime"),
    "deploy-formats": ("torch", "onnx", "onnxruntime", "coremltools"),
    "behaviour-tests": ("torch", "onnxruntime", "coremltools"),
    "release-gates": (),
    "report": ("torch", "pyarrow"),
    "package": ("torch", "deepspeed", "onnxruntime", "coremltools", "pyarrow"),
}

# Upper bounds for stages that wait on the outside world; a hung read fails and is retried.
STAGE_TIMEOUTS: dict[str, float] = {"fetch": 4 * 3600.0}

NOT_IN_KEY = ("config", "paths")

# Final state, seconds and end time of each stage, per root flow run, filled by task hooks in this
# process, in the order the stages ended. (Prefect writes task runs to its database asynchronously, so
# reading them back right after a fast cached stage can miss it; the hooks see every state as it happens.)
# ``seconds`` is the stage's own run (Running to its final state; 0 when Cached); ``ended`` (time.time())
# lets doughflow.orchestration.timing charge each stage the wall time since the one before, Prefect's
# work around it (task-run records, cache lookups, result files, state changes) included.
STAGE_LOG: dict[str, dict[str, dict]] = {}


def _log_stage_state(task: Any, task_run: Any, state: Any) -> None:
    started = task_run.start_time
    seconds = (state.timestamp - started).total_seconds() if started and state.timestamp else 0.0
    # Keyed by the root flow run, so stages inside sub-flows (prepare-data) count for the run.
    run = root_flow_run_id() or str(task_run.flow_run_id)
    stages = STAGE_LOG.setdefault(run, {})
    stages.pop(task.name, None)  # a retried stage counts where it finally ended
    stages[task.name] = {"state": state.name, "seconds": round(seconds, 3), "ended": time.time()}


# Fault-suite hook (tests/flows/test_faults.py): with DOUGHFLOW_FAULT_HOLD_STAGE in the environment at
# import, every stage gets an on-running hook; the stage it names (read when the stage starts) writes the
# file DOUGHFLOW_FAULT_HOLD_MARKER and waits to be killed, so a test can kill -9 the flow inside any stage
# at a known point. Outside that suite the variable is unset and no hook is installed.
FAULT_HOLD = "DOUGHFLOW_FAULT_HOLD_STAGE" in os.environ


def _hold_for_fault_test(task: Any, task_run: Any, state: Any) -> None:
    if os.environ.get("DOUGHFLOW_FAULT_HOLD_STAGE") != task.name:
        return
    marker = Path(os.environ["DOUGHFLOW_FAULT_HOLD_MARKER"])
    staged = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    staged.write_text(f"{task.name} {os.getpid()}\n")
    staged.replace(marker)  # whole or absent: the test polls for the file, then reads it
    while True:
        time.sleep(1)


def stage_environment(stage: str, config: Any) -> dict[str, Any]:
    """What a stage's output depends on beyond its config sections and upstream results: the versions
    of its libraries, the source of user modules its sections name, and (package) the fingerprint of
    the signing key, so a bundle signed with another key, or none, is not served from the cache."""
    environment: dict[str, Any] = {
        "libraries": library_versions(STAGE_LIBRARIES.get(stage, ())),
        "modules": user_module_sources(config, STAGE_SECTIONS[stage]),
    }
    if stage == "package":
        from doughflow.packaging.signing import SigningError, key_fingerprint, signing_key_path

        key = signing_key_path(config.packaging.signing_key)
        try:
            environment["signer"] = key_fingerprint(key) if key else None
        except SigningError:
            environment["signer"] = f"unusable key {key}"  # the stage runs and fails naming it
    return environment


def cache_key_for(stage: str, parameters: dict[str, Any]) -> str | None:
    """The stage's cache key from its call parameters, or None (no caching) when caching is off."""
    config = parameters["config"]
    if stage not in STAGE_SECTIONS or not config.orchestration.cache:
        return None
    upstream = {name: value for name, value in parameters.items() if name not in NOT_IN_KEY}
    key = stage_key(stage, config, STAGE_SECTIONS[stage], upstream, stage_environment(stage, config))
    return f"doughflow-{stage}-{key}"


def _read_record(store: Any, key: str) -> bytes | None:
    """The raw bytes stored under ``key``, or None when there are none. Read through the storage block,
    never through ``ResultStore.exists``/``read``, which deserialise with whatever serializer the
    record names (pickle included)."""
    storage = getattr(store, "result_storage", None)
    if storage is None:
        return None
    try:
        return storage.read_path(key, _sync=True)
    except UntrustedResultError:
        raise
    except (OSError, ValueError):  # absent: LocalFileSystem raises ValueError, fsspec FileNotFoundError
        return None


def live_cache_key(context: Any, key: str | None, config: ExperimentConfig, expected: Any = None) -> str | None:
    """``key``, or its next generation when the record stored under it cannot be served: it names
    deleted files (the stage then recomputes, and stores under the new generation, which later runs
    find, instead of serving paths to nothing), or it is not a record we wrote: not JSON, another
    serializer (a planted pickle), a class that is not ours, or not the stage's return type ``expected``.
    Those are never deserialised by Prefect; each is a cache miss with a warning. None (no caching for
    this call) when every generation is unusable."""
    if key is None or context is None or getattr(context, "result_store", None) is None:
        return key
    artifacts = Path(config.artifacts_dir)
    roots = (str(artifacts), str(artifacts.resolve()))
    for generation in range(MAX_CACHE_GENERATIONS + 1):
        candidate = key if generation == 0 else f"{key}-g{generation}"
        try:
            content = _read_record(context.result_store, candidate)
            if content is None:
                return candidate
            result = read_trusted(content, candidate)
            if expected is not None and not matches(result, expected):
                raise UntrustedResultError(f"{candidate}: holds a {type(result).__name__}, not the stage's {expected}")
        except UntrustedResultError as error:
            log.warning("ignoring cached result (%s): recomputing the stage", error)
            continue
        gone = missing_outputs(result, roots)
        if not gone:
            return candidate
        log.info("cached result %s names %d deleted file(s) (e.g. %s): recomputing", candidate, len(gone), gone[0])
        if generation == MAX_CACHE_GENERATIONS:
            return candidate  # the last generation is overwritten
    log.warning("no usable cache generation of %s: running the stage without its cache", key)
    return None


def _return_type(fn: Callable[..., Any]) -> Any:
    """The stage function's declared return type, or None when it cannot be resolved."""
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:  # noqa: BLE001 - an unresolvable hint only skips the type check
        return None


def _stage_task(defaults: dict, name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@task`` with the project's defaults, a cache key when the stage is cacheable, and
    persisted results so that a later run (or a retry) can pick the result up."""

    def decorate(fn: Callable[..., Any]) -> Any:
        signature = inspect.signature(fn)
        settings = {**defaults, **options}
        if name in STAGE_SECTIONS:
            settings.pop("cache_policy", None)
            settings.setdefault("persist_result", True)

            expected = _return_type(fn)

            def key_fn(context: Any, parameters: dict) -> str | None:
                arguments = signature.bind_partial(**parameters).arguments
                return live_cache_key(context, cache_key_for(name, arguments), arguments["config"], expected)

            settings["cache_key_fn"] = key_fn
            settings.setdefault("result_serializer", RESULT_SERIALIZER)
        settings["on_completion"] = [*settings.get("on_completion", []), _log_stage_state]
        settings["on_failure"] = [*settings.get("on_failure", []), _log_stage_state]
        if FAULT_HOLD:
            settings["on_running"] = [*settings.get("on_running", []), _hold_for_fault_test]
        if name in STAGE_TIMEOUTS:
            settings.setdefault("timeout_seconds", STAGE_TIMEOUTS[name])
        return task(name=name, **settings)(fn)

    return decorate


# Failures that another attempt would repeat: bad input named by the stage (a truncated or mislabelled
# file, a link out of the source folder, a missing column: ValueError and its SchemaError), and OSErrors
# that say "never". Retrying them cost 42 s of backoff per hostile source before the error was shown.
PERMANENT_ERRORS = (ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def retry_unless_permanent(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition of the I/O stages: retry what may pass next time, not a named bad input."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result says nothing against another try
        return True
    return not isinstance(error, PERMANENT_ERRORS)


# I/O stages retry transient failures with backoff and jitter; compute stages fail fast (a retry
# would repeat the same error), except where a stage says otherwise.
io_task = functools.partial(
    _stage_task,
    {
        "cache_policy": NO_CACHE,
        "retries": 3,
        "retry_delay_seconds": [2, 10, 30],
        "retry_jitter_factor": 0.5,
        "retry_condition_fn": retry_unless_permanent,
    },
)
compute_task = functools.partial(_stage_task, {"cache_policy": NO_CACHE})


def stage_runs() -> tuple[dict[str, float], dict[str, str]]:
    """Seconds and final state ("Completed", "Cached", ...) of each stage of the current flow run;
    empty outside a flow run, so callers also work as plain functions in tests."""
    run = root_flow_run_id()
    stages = dict(STAGE_LOG.get(run, {})) if run else {}
    if run and flow_run_attempt() > 1:
        for name, entry in earlier_attempt_stages(run).items():
            stages.setdefault(name, entry)
    return {name: e["seconds"] for name, e in stages.items()}, {name: e["state"] for name, e in stages.items()}
