"""Search space: checked against the config model when the config loads, sampled by Optuna within
its bounds, and applied to a config that validates as a whole."""

from __future__ import annotations

import math

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.config import ConfigError, ExperimentConfig, SearchParamConfig, check_space, load_config, resolve_field
from doughflow.tuning.space import apply_params, params_as_overrides, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(**specs) -> dict[str, SearchParamConfig]:
    return {path.replace("__", "."): SearchParamConfig.model_validate(spec) for path, spec in specs.items()}


def test_shipped_pizza_config_has_a_valid_space_and_baseline():
    config = load_config("configs/pizza.yaml")
    assert {"train.learning_rate", "train.model.width", "train.weight_decay"} <= set(config.tune.search_space)
    assert config.tune.search_space["train.learning_rate"].log
    baseline = apply_params(config, config.tune.enqueue[0])
    assert baseline.train == config.train  # the enqueued baseline is the config as it is


@pytest.mark.parametrize(
    "override, message",
    [
        ("tune.search_space={train.lr: {type: float, low: 0.1, high: 1}}", "no field 'train.lr'"),
        ("tune.search_space={trian.epochs: {type: int, low: 1, high: 3}}", "no field 'trian'"),
        ("tune.search_space={train.model: {type: int, low: 8, high: 16}}", "'train.model' is a section"),
        ("tune.search_space={train.epochs.max: {type: int, low: 1, high: 3}}", "'train.epochs' is a value"),
        (
            "tune.search_space={train.model.width: {type: int, low: 2, high: 16}}",
            "'train.model.width']: 2 is not a valid",
        ),
        ("tune.search_space={train.precision: {type: categorical, choices: [fp32, fp8]}}", "'fp8' is not a valid"),
        ("tune.search_space={tune.n_trials: {type: int, low: 1, high: 3}}", "tune section cannot be tuned"),
        (
            "tune.search_space={train.learning_rate: {type: float, low: 0, high: 1, log: true}}",
            "log scale needs low > 0",
        ),
        ("tune.search_space={train.epochs: {type: int, low: 1.5, high: 3}}", "whole-number"),
        ("tune.search_space={train.epochs: {type: int, low: 5, high: 3}}", "above high"),
        ("tune.search_space={train.seed: {type: categorical}}", "needs choices"),
        ("tune.enqueue=[{train.seed: 1}]", "not in tune.search_space"),
        ("tune.metric=val_mae", "should be minimized"),
    ],
)
def test_bad_search_space_fails_at_load_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert message in str(error.value)
    assert "tune" in str(error.value)


def test_paths_into_free_form_options_are_left_to_the_model_factory():
    assert resolve_field(ExperimentConfig, "train.model.options.depth") is None
    check_space(ExperimentConfig, _space(train__model__options__depth={"type": "int", "low": 1, "high": 4}))


def test_cross_field_rules_fail_when_a_sample_is_applied_naming_the_values():
    config = ExperimentConfig()
    with pytest.raises(ConfigError, match=r"split.*must be 1.0") as error:
        apply_params(config, {"split.train": 0.9})
    assert "split.train" in str(error.value)


def test_a_trial_config_is_checked_against_the_code_it_names():
    """A sample that names an adapter nobody registered fails before the trial trains, naming the field."""
    with pytest.raises(ConfigError, match=r"trial 3 with .*\n  data.adapter: unknown dataset adapter 'nope'"):
        apply_params(ExperimentConfig(), {"data.adapter": "nope"}, source="trial 3")


def test_suggest_uses_the_path_as_optuna_name_and_overrides_round_trip():
    space = _space(
        train__learning_rate={"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        train__epochs={"type": "int", "low": 2, "high": 6, "step": 2},
        train__model__width={"type": "categorical", "choices": [8, 16]},
    )
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    params = suggest(trial, space)
    assert set(trial.params) == set(space) and params == trial.params
    assert params["train.epochs"] in (2, 4, 6)
    via_cli = load_config(None, params_as_overrides(params))
    assert via_cli.train == apply_params(ExperimentConfig(), params).train


finite = st.floats(min_value=1e-6, max_value=5.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    lr=st.tuples(finite, finite).map(sorted),
    log=st.booleans(),
    width=st.tuples(st.integers(4, 512), st.integers(4, 512)).map(sorted),
    decay=st.lists(st.sampled_from([0.0, 1e-5, 1e-4, 0.01, 0.5]), min_size=1, max_size=4, unique=True),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampled_values_lie_in_bounds_and_apply_cleanly(lr, log, width, decay, seed):
    space = _space(
        train__learning_rate={"type": "float", "low": lr[0], "high": lr[1], "log": log},
        train__model__width={"type": "int", "low": width[0], "high": width[1]},
        train__weight_decay={"type": "categorical", "choices": decay},
    )
    check_space(ExperimentConfig, space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params = suggest(study.ask(), space)
    assert lr[0] <= params["train.learning_rate"] <= lr[1] or math.isclose(params["train.learning_rate"], lr[1])
    assert width[0] <= params["train.model.width"] <= width[1] and isinstance(params["train.model.width"], int)
    assert params["train.weight_decay"] in decay
    config = apply_params(ExperimentConfig(), params)
    assert config.train.learning_rate == params["train.learning_rate"]
    assert config.train.model.width == params["train.model.width"]
    assert config.train.weight_decay == params["train.weight_decay"]
    assert config.data == ExperimentConfig().data  # a train-only space leaves the data stages' inputs alone
