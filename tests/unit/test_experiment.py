"""An experiment is checked against the code it names before any work: the adapter must be there, and
a classification adapter needs a source. The config alone (a leaf) cannot know either."""

from __future__ import annotations

import sys
import textwrap

import pytest

from doughflow.config import ConfigError, ExperimentConfig, dump_config, validate_config
from doughflow.data.adapters import ADAPTER_REGISTRY
from doughflow.experiment import check_experiment, load_experiment


def test_unknown_adapter_and_classification_without_a_source_are_config_errors():
    unknown = validate_config({"data": {"adapter": "nope"}})  # the config alone cannot know
    with pytest.raises(ConfigError, match=r"data.adapter: unknown dataset adapter 'nope'.*image_classification"):
        check_experiment(unknown)
    with pytest.raises(
        ConfigError, match="data.adapter 'image_classification' is a classification adapter: set data.source.url"
    ):
        check_experiment(validate_config({"data": {"adapter": "image_classification"}}))
    with pytest.raises(ConfigError, match=r"data.adapter: No module named 'no_such_adapters_module'"):
        check_experiment(validate_config({"data": {"import_module": "no_such_adapters_module"}}))


def test_runnable_experiments_pass():
    check_experiment(ExperimentConfig())
    check_experiment(load_experiment("configs/shapes.yaml"))


def test_load_experiment_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text(dump_config(ExperimentConfig(data={"adapter": "nope"})))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert str(caught.value).startswith(
        f"invalid configuration in {path}:\n  data.adapter: unknown dataset adapter 'nope'"
    )
    with pytest.raises(ConfigError, match="data.adapter: unknown dataset adapter 'nope'"):
        load_experiment(None, ["data.adapter=nope"])


def test_an_adapter_module_named_by_the_config_is_imported_for_the_check(tmp_path, monkeypatch):
    (tmp_path / "lab_adapters.py").write_text(
        textwrap.dedent("""
        from doughflow.data.adapters import CountColumns, register_adapter

        register_adapter("lab_counts")(type("LabCounts", (CountColumns,), {}))
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        check_experiment(load_experiment(None, ["data.adapter=lab_counts", "data.import_module=lab_adapters"]))
        assert "lab_counts" in ADAPTER_REGISTRY
    finally:
        ADAPTER_REGISTRY.pop("lab_counts", None)
        sys.modules.pop("lab_adapters", None)


def test_deepspeed_monitor_sections_validate_like_deepspeeds_and_need_their_packages():
    """A DeepSpeed user's monitor sections are accepted as DeepSpeed spells them, with no network (W&B is
    not called); an unknown key fails naming it, and an enabled monitor whose package is missing fails
    before any work, naming the field and the package."""
    import importlib.util

    sections = {
        "tensorboard": {"enabled": True, "output_path": "tb", "job_name": "run1"},
        "csv_monitor": {"enabled": True, "output_path": "", "job_name": None},
        "wandb": {"enabled": True, "group": "g", "team": "t", "project": "p"},
    }
    config = validate_config({"train": {"deepspeed": {"monitor": sections}}})
    assert config.train.deepspeed.monitor.wandb.team == "t" and config.train.deepspeed.monitor.enabled
    with pytest.raises(ConfigError, match="train.deepspeed.monitor.wandb.entity: unknown field"):
        validate_config({"train": {"deepspeed": {"monitor": {"wandb": {"entity": "t"}}}}})
    with pytest.raises(ConfigError, match="train.deepspeed.monitor.csv_monitor.job_name: String should match"):
        validate_config({"train": {"deepspeed": {"monitor": {"csv_monitor": {"job_name": "../elsewhere"}}}}})

    missing = [name for name in ("tensorboard", "wandb") if importlib.util.find_spec(name) is None]
    if missing:  # neither is a dependency: a plain `make setup` has neither
        with pytest.raises(ConfigError) as caught:
            check_experiment(config, source="exp.yaml")
        assert str(caught.value).splitlines() == [
            "invalid configuration in exp.yaml:",
            *[
                f"  train.deepspeed.monitor.{name}: enabled, but the {name} package is not installed (pip install {name})"
                for name in missing
            ],
        ]
    check_experiment(validate_config({"train": {"deepspeed": {"monitor": {"csv_monitor": {"enabled": True}}}}}))
