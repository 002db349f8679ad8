import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from doughflow.config import (
    DEFAULT_CONFIG,
    ConfigError,
    ExperimentConfig,
    PizzaGeneratorConfig,
    load_config,
    parse_override,
    validate_config,
)
from doughflow.data.adapters import adapter_for

ROOT = Path(__file__).resolve().parents[2]


def test_default_yaml_matches_model_defaults():
    # The YAML is the experiment; the model's defaults are what the Prefect UI form shows.
    assert load_config(DEFAULT_CONFIG) == ExperimentConfig()


def test_overrides_reach_nested_fields_and_parse_types():
    config = load_config(
        None,
        ["train.epochs=3", "train.learning_rate=1e-2", "labels=[olive, basil]", "data.source.generator.num_images=50"],
    )
    assert config.train.epochs == 3
    assert config.train.learning_rate == pytest.approx(0.01)
    assert config.labels == ["olive", "basil"]
    assert config.data.source.generator.num_images == 50


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ("train.epoch=3", "train.epoch", "unknown field"),
        ("train.epochs=three", "train.epochs", "valid integer"),
        ("train.epochs=0", "train.epochs", "greater than or equal to 1"),
        ("split.train=0.9", "split", "must be 1.0"),
        ("labels=[olive, olive]", "labels", "unique"),
        ("labels=[olive, anchovy]", "<root>", "anchovy"),
        ("train.precision=fp8", "train.precision", "fp32"),
        ("train.scaling={rule: sqrt}", "train.scaling", "needs reference_global_batch"),
        ("train.scaling.rule=cubic", "train.scaling.rule", "linear"),
        ("train.micro_batch_size=big", "train.micro_batch_size", "from 1 to 4096, or 'auto'"),
        ("train.micro_batch_size=0", "train.micro_batch_size", "from 1 to 4096, or 'auto'"),
        ("train.global_batch_size=100", "train", "global_batch_size 100 is not a whole number of micro batches (32)"),
        ("train.memory_budget_gb=0", "train.memory_budget_gb", "greater than 0"),
        ("train.micro_batch_search.headroom=1", "train.micro_batch_search.headroom", "less than 1"),
    ],
)
def test_bad_values_fail_naming_the_field(override, field, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    text = str(caught.value)
    assert f"{field}:" in text and message in text
    assert "pizza.yaml" in text


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("train.epochs")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        load_config(None, ["name.sub=1"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(bad)


def test_config_hash_tracks_every_field():
    base = ExperimentConfig()
    assert base.config_hash() == ExperimentConfig().config_hash()
    assert base.config_hash() != load_config(None, ["train.seed=1"]).config_hash()


def test_label_map_is_config():
    config = load_config(None, ["labels=[pepperoni, olive, onion]"])
    assert adapter_for(config).target_columns == ["count_pepperoni", "count_olive", "count_onion"]


def test_config_imports_no_other_part_of_the_library():
    """A leaf: every module can take a typed config, and importing it cannot start an import circle."""
    code = "import json, sys, doughflow.config; print(json.dumps(sorted(m for m in sys.modules if m.startswith('doughflow'))))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == ["doughflow", "doughflow.config", "doughflow.toppings"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.source.generator.image_size=64",
            "data.source.generator.image_size was removed: the generator draws at data.image_size",
        ),
        (
            "data.source.generator.rows_per_shard=500",
            "data.source.generator.rows_per_shard was removed: the generator writes shards of data.rows_per_shard rows",
        ),
        (
            "data.source.generator.max_count=3",
            "data.source.generator.max_count was renamed data.source.generator.max_per_topping",
        ),
    ],
)
def test_retired_keys_fail_naming_what_replaced_them(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert message in str(caught.value) and "pizza.yaml" in str(caught.value)


def test_retired_keys_are_all_named_at_once_and_outside_a_file_too():
    with pytest.raises(ConfigError) as caught:
        validate_config({"data": {"source": {"generator": {"image_size": 64, "max_count": 3}}, "max_count": 20}})
    lines = str(caught.value).splitlines()[1:]
    assert [line.split(" was ")[0].strip() for line in lines] == [
        "data.source.generator.image_size",
        "data.source.generator.max_count",
    ]
    with pytest.raises(
        ValidationError, match="rows_per_shard was removed: the generator writes shards of data.rows_per_shard"
    ):
        PizzaGeneratorConfig(rows_per_shard=100)


def test_one_field_one_meaning():
    """The generator's size and shard size are data's; its per-topping maximum is not data.max_count."""
    config = load_config(
        None, ["data.source.generator.max_per_topping=2", "data.image_size=96", "data.rows_per_shard=300"]
    )
    generator = config.data.source.generator
    assert generator.max_per_topping == 2 and config.data.max_count == 20
    assert not {"image_size", "rows_per_shard", "max_count"} & set(type(generator).model_fields)


def test_stack_environment_picks_where_not_what(monkeypatch, tmp_path):
    """The compose worker's DOUGHFLOW_DASK_ADDRESS / DOUGHFLOW_RESULT_STORAGE fill in an unset
    address or result storage; a config's own value wins, and neither changes the config hash."""
    plain = load_config(None, [f"artifacts_dir={tmp_path}"])
    assert plain.dask.scheduler_address() is None
    assert plain.result_storage_url() == str(tmp_path / ".prefect-results")
    monkeypatch.setenv("DOUGHFLOW_DASK_ADDRESS", "tcp://dask-scheduler:8786")
    monkeypatch.setenv("DOUGHFLOW_RESULT_STORAGE", "s3://doughflow/results")
    stacked = load_config(None, [f"artifacts_dir={tmp_path}"])
    assert stacked.dask.scheduler_address() == "tcp://dask-scheduler:8786"
    assert stacked.result_storage_url() == "s3://doughflow/results"
    assert stacked.config_hash() == plain.config_hash()
    own = load_config(None, ["dask.address=tcp://10.0.0.5:8786", f"orchestration.result_storage={tmp_path / 'r'}"])
    assert own.dask.scheduler_address() == "tcp://10.0.0.5:8786" and own.result_storage_url() == str(tmp_path / "r")


def test_a_global_batch_must_split_over_the_configured_processes():
    ok = load_config(None, ["train.global_batch_size=256", "train.launcher.num_processes=4"])
    assert ok.train.global_batch_size == 256
    with pytest.raises(ConfigError, match=r"3 processes .*multiple of 96"):
        load_config(None, ["train.global_batch_size=256", "train.launcher.num_processes=3"])
    auto = load_config(
        None, ["train.micro_batch_size=auto", "train.global_batch_size=96", "train.launcher.num_processes=3"]
    )
    assert auto.train.micro_batch_size == "auto"
