"""Which config fields each stage really reads, recorded while a flow runs.

A cached stage's key holds only the config sections listed for it (``STAGE_SECTIONS``); a field the
stage reads outside them would be a stale-cache hole (change it, get the old result). While the context
is open, every read of a config field (attribute access on a config model, or a ``model_dump`` of a
section) made inside a stage function is recorded under that stage's name. The stage functions are
wrapped on their Prefect task objects for the duration, so the flow itself runs unchanged.
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from doughflow import config as config_module
from doughflow.caching import covers

Strict = config_module._Strict


@contextmanager
def config_reads(tasks: dict[str, Any]) -> Iterator[dict[str, set[str]]]:
    """``tasks``: stage name -> Prefect task. Yields stage -> dotted fields read (filled as stages run)."""
    reads: dict[str, set[str]] = defaultdict(set)
    paths: dict[int, str] = {}
    current = threading.local()

    def base_path(model: Any) -> str | None:
        if id(model) in paths:
            return paths[id(model)]
        return "" if isinstance(model, config_module.ExperimentConfig) else None

    def getattribute(self: Any, name: str) -> Any:
        value = object.__getattribute__(self, name)
        stage = getattr(current, "stage", None)
        if stage is None or name.startswith("_") or name not in type(self).model_fields:
            return value
        base = base_path(self)
        if base is None:
            return value
        dotted = f"{base}.{name}" if base else name
        if isinstance(value, Strict):
            paths[id(value)] = dotted
        else:
            reads[stage].add(dotted)
        return value

    original_dump = Strict.model_dump

    def model_dump(self: Any, *args: Any, **kwargs: Any) -> Any:
        stage = getattr(current, "stage", None)
        base = base_path(self) if stage is not None else None
        if base is not None:
            reads[stage].add(base or "*")
        return original_dump(self, *args, **kwargs)

    def traced(stage: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current.stage = stage
            try:
                return fn(*args, **kwargs)
            finally:
                current.stage = None

        return wrapper

    had_dump = "model_dump" in Strict.__dict__
    originals = {stage: task.fn for stage, task in tasks.items()}
    Strict.__getattribute__ = getattribute  # type: ignore[method-assign]
    Strict.model_dump = model_dump  # type: ignore[method-assign]
    for stage, task in tasks.items():
        task.fn = traced(stage, task.fn)
    try:
        yield reads
    finally:
        del Strict.__getattribute__
        if had_dump:
            Strict.model_dump = original_dump  # type: ignore[method-assign]
        else:
            del Strict.model_dump
        for stage, task in tasks.items():
            task.fn = originals[stage]


def uncovered(reads: dict[str, set[str]], sections: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Stage -> fields it read that its cache key's sections leave out."""
    return {
        stage: sorted(f for f in fields if not covers(sections[stage], f))
        for stage, fields in reads.items()
        if any(not covers(sections[stage], f) for f in fields)
    }


def stage_tasks() -> dict[str, Any]:
    """Every cached stage's Prefect task object, by stage name."""
    import importlib
    import pkgutil

    import tasks as task_package
    from doughflow.orchestration.stage_tasks import STAGE_SECTIONS

    found = {}
    for module in pkgutil.iter_modules(task_package.__path__):
        for value in vars(importlib.import_module(f"tasks.{module.name}")).values():
            if getattr(value, "name", None) in STAGE_SECTIONS and hasattr(value, "fn"):
                found[value.name] = value
    return found
