"""An experiment ready to run: its config loaded, then checked against the code it names.

:mod:`doughflow.config` checks what a config says on its own and imports nothing of the library, so
that every module can take a typed config. What needs the library is checked here: the dataset
adapter ``data.adapter`` names must be registered (after importing ``data.import_module``), an adapter
that reads labels needs some, a classification or text adapter needs ``data.source.url`` (the built-in
generator draws pizzas with counts), a run that trains needs an adapter with a model (the text
adapter has none: its data goes through ``flows.prepare``), and a DeepSpeed monitor that is switched on
needs its package (DeepSpeed would otherwise fail only when training starts, after the data stages).
Every entry point that runs an experiment calls :func:`check_experiment` before any work - the flow
command line, ``flows.review``, each tuning trial's config - and it fails naming the field.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from doughflow.config import ConfigError, ExperimentConfig, config_source, load_config
from doughflow.data.adapters import adapter_for


def check_experiment(config: ExperimentConfig, source: str = "<config>", trains: bool = True) -> None:
    """Raise ConfigError naming ``source`` and the field when the config names code that is not there
    or that cannot run on its data. ``trains``: the run trains a model (flows.train, flows.tune), not
    only the data stages (flows.prepare)."""
    where = f"invalid configuration in {source}:\n  "
    try:
        adapter = adapter_for(config)
    except (KeyError, ImportError, ValueError) as error:
        detail = error.args[0] if error.args else error
        raise ConfigError(f"{where}data.adapter: {detail}") from None
    name = config.data.adapter
    if (adapter.problem != "none" or adapter.source_columns) and not config.labels:
        raise ConfigError(
            f"{where}labels: empty, but data.adapter {name!r} needs the label map (the classes, in output "
            "order, e.g. [0, 1, 2] or [cat, dog])"
        )
    if adapter.problem == "classification" and config.data.source.url is None:
        raise ConfigError(
            f"{where}data.adapter {name!r} is a classification adapter: set data.source.url (the "
            "built-in generator draws pizzas with counts)"
        )
    if adapter.modality == "text" and config.data.source.url is None:
        raise ConfigError(
            f"{where}data.adapter {name!r} reads text: set data.source.url to a Parquet, CSV or JSONL "
            "file or folder (`python -m doughflow.data.synthetic.records --out data/people` writes one)"
        )
    if adapter.modality == "text" and config.data.subsample.near_dup.kind == "image":
        raise ConfigError(
            f"{where}data.subsample.near_dup.kind is image, but data.adapter {name!r} reads text: "
            "set it to auto (or text)"
        )
    if trains and adapter.problem == "none":
        raise ConfigError(
            f"{where}data.adapter {name!r} has no model to train: run its data stages (dedup, caps, "
            "split) with `python -m flows.prepare`"
        )
    missing = missing_monitor_packages(config)
    if missing:
        raise ConfigError("\n  ".join([f"invalid configuration in {source}:", *missing]))


# DeepSpeed monitor -> the package it imports when the engine starts.
MONITOR_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def missing_monitor_packages(config: ExperimentConfig) -> list[str]:
    """``train.deepspeed.monitor.<name>: ...`` lines for each enabled monitor whose package is not installed."""
    monitor = config.train.deepspeed.monitor
    return [
        f"train.deepspeed.monitor.{name}: enabled, but the {package} package is not installed (pip install {package})"
        for name, package in MONITOR_PACKAGES.items()
        if getattr(monitor, name).enabled and importlib.util.find_spec(package) is None
    ]


def load_experiment(
    path: str | Path | None = None, overrides: list[str] | None = None, trains: bool = True
) -> ExperimentConfig:
    """:func:`doughflow.config.load_config`, then :func:`check_experiment`: a config that can run."""
    config = load_config(path, overrides)
    check_experiment(config, source=config_source(path), trains=trains)
    return config
