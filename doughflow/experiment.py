"""An experiment ready to run: its config loaded, then checked against the code it names.

:mod:`doughflow.config` checks what a config says on its own and imports nothing of the library, so
that every module can take a typed config. What needs the library is checked here: the dataset
adapter ``data.adapter`` names must be registered (after importing ``data.import_module``), and a
classification adapter needs ``data.source.url`` (the built-in generator draws counts), and a DeepSpeed
monitor that is switched on needs its package (DeepSpeed would otherwise fail only when training starts,
after the data stages). Every entry
point that runs an experiment calls :func:`check_experiment` before any work - the flow command
line, ``flows.review``, each tuning trial's config - and it fails naming the field.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from doughflow.config import ConfigError, ExperimentConfig, config_source, load_config
from doughflow.data.adapters import adapter_for


def check_experiment(config: ExperimentConfig, source: str = "<config>") -> None:
    """Raise ConfigError naming ``source`` and the field when the config names code that is not there
    or that cannot run on its data."""
    try:
        adapter = adapter_for(config)
    except (KeyError, ImportError) as error:
        detail = error.args[0] if error.args else error
        raise ConfigError(f"invalid configuration in {source}:\n  data.adapter: {detail}") from None
    if adapter.problem == "classification" and config.data.source.url is None:
        raise ConfigError(f"invalid configuration in {source}:\n  data.adapter {config.data.adapter!r} is a "
                          "classification adapter: set data.source.url (the built-in generator draws pizzas with counts)")
    missing = missing_monitor_packages(config)
    if missing:
        raise ConfigError("\n  ".join([f"invalid configuration in {source}:", *missing]))


# DeepSpeed monitor -> the package it imports when the engine starts.
MONITOR_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def missing_monitor_packages(config: ExperimentConfig) -> list[str]:
    """``train.deepspeed.monitor.<name>: ...`` lines for each enabled monitor whose package is not installed."""
    monitor = config.train.deepspeed.monitor
    return [f"train.deepspeed.monitor.{name}: enabled, but the {package} package is not installed (pip install {package})"
            for name, package in MONITOR_PACKAGES.items()
            if getattr(monitor, name).enabled and importlib.util.find_spec(package) is None]


def load_experiment(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """:func:`doughflow.config.load_config`, then :func:`check_experiment`: a config that can run."""
    config = load_config(path, overrides)
    check_experiment(config, source=config_source(path))
    return config
