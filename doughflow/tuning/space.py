"""The search space: check it against the config model, sample it with Optuna, apply a sample.

A search-space key is a dotted config path (``train.learning_rate``). It is checked when the config
loads, so a typo or a range the field itself would reject (``train.model.width`` low 2 while the
field needs >= 4) fails before any trial runs, naming the key. Cross-field rules (split fractions
summing to one) are checked when a sample is applied, with the trial's values in the message.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from doughflow.config import ExperimentConfig, SearchParamConfig, validate_config

# Tuning the tuner itself would change the study mid-study.
FORBIDDEN_ROOTS = ("tune",)


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also inside ``X | None``), or None for a plain value."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_mapping(annotation: Any) -> bool:
    return any(typing.get_origin(c) is dict or c is dict for c in (annotation, *typing.get_args(annotation)))


def resolve_field(model: type[BaseModel], path: str) -> TypeAdapter | None:
    """A validator for the value at ``path``; None for a key inside a free-form mapping (model.options).
    Raises ValueError saying where the path stops leading to a value."""
    parts = path.split(".")
    if not all(parts):
        raise ValueError("the path has an empty part")
    if parts[0] in FORBIDDEN_ROOTS:
        raise ValueError("the tune section cannot be tuned")
    current: type[BaseModel] = model
    for depth, part in enumerate(parts):
        where = ".".join(parts[: depth + 1])
        field = current.model_fields.get(part)
        if field is None:
            known = ", ".join(current.model_fields)
            raise ValueError(f"no field {where!r} (known here: {known})")
        last = depth == len(parts) - 1
        nested = _model_class(field.annotation)
        if nested is not None:
            if last:
                raise ValueError(f"{where!r} is a section, not a value: tune one of its fields")
            current = nested
            continue
        if _is_mapping(field.annotation) and not last:
            return None  # free-form options: the model factory checks them
        if not last:
            raise ValueError(f"{where!r} is a value, not a section")
        return TypeAdapter(Annotated[field.annotation, field])
    raise AssertionError("unreachable")


def _values_to_check(spec: SearchParamConfig) -> list[Any]:
    if spec.type == "categorical":
        return list(spec.choices or [])
    cast = int if spec.type == "int" else float
    return [cast(spec.low), cast(spec.high)]


def check_space(model: type[BaseModel], space: dict[str, SearchParamConfig],
                enqueue: list[dict[str, Any]] = ()) -> None:
    """Every key a field, every bound and choice a value that field accepts; enqueued trials name
    only tuned keys. Raises ValueError naming the key."""
    for path, spec in space.items():
        try:
            adapter = resolve_field(model, path)
        except ValueError as error:
            raise ValueError(f"tune.search_space[{path!r}]: {error}") from None
        if adapter is None:
            continue
        for value in _values_to_check(spec):
            try:
                adapter.validate_python(value)
            except ValidationError as error:
                reason = "; ".join(e["msg"] for e in error.errors())
                raise ValueError(f"tune.search_space[{path!r}]: {value!r} is not a valid value ({reason})") from None
    for index, params in enumerate(enqueue):
        unknown = sorted(set(params) - set(space))
        if unknown:
            raise ValueError(f"tune.enqueue[{index}] sets {unknown}, which are not in tune.search_space (fix the keys, or drop the baseline with tune.enqueue=[])")


def suggest(trial, space: dict[str, SearchParamConfig]) -> dict[str, Any]:
    """Ask an Optuna trial for one value per key (the key is the Optuna parameter name)."""
    params: dict[str, Any] = {}
    for path, spec in space.items():
        if spec.type == "categorical":
            params[path] = trial.suggest_categorical(path, list(spec.choices or []))
        elif spec.type == "int":
            params[path] = trial.suggest_int(path, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
        else:
            params[path] = trial.suggest_float(path, float(spec.low), float(spec.high), step=spec.step, log=spec.log)
    return params


def _set(raw: dict, path: str, value: Any) -> None:
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def apply_params(config: ExperimentConfig, params: dict[str, Any], source: str = "trial") -> ExperimentConfig:
    """The config with each dotted path set to its sampled value, validated as a whole."""
    raw = config.model_dump(mode="json")
    for path, value in params.items():
        _set(raw, path, value)
    return validate_config(raw, source=f"{source} with {params}")


def params_as_overrides(params: dict[str, Any]) -> list[str]:
    """``key=value`` lines a person can paste after ``python -m flows.train``."""
    import json

    return [f"{path}={json.dumps(value)}" for path, value in params.items()]
