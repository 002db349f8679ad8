"""The search space: sample it with Optuna, apply a sample to the experiment's config.

A search-space key is a dotted config path (``train.learning_rate``). The keys and ranges are checked
when the config loads (:func:`doughflow.config.check_space`), so a typo fails before any trial runs,
naming the key. Cross-field rules (split fractions summing to one) and the experiment's code checks
(:func:`doughflow.experiment.check_experiment`) run when a sample is applied, with the trial's values
in the message.
"""

from __future__ import annotations

import json
from typing import Any

from doughflow.config import ExperimentConfig, SearchParamConfig, validate_config
from doughflow.experiment import check_experiment


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
    """The config with each dotted path set to its sampled value, validated and checked as a whole."""
    raw = config.model_dump(mode="json")
    for path, value in params.items():
        _set(raw, path, value)
    where = f"{source} with {params}"
    trial_config = validate_config(raw, source=where)
    check_experiment(trial_config, source=where)
    return trial_config


def params_as_overrides(params: dict[str, Any]) -> list[str]:
    """``key=value`` lines a person can paste after ``python -m flows.train``."""
    return [f"{path}={json.dumps(value)}" for path, value in params.items()]
