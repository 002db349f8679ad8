"""The recipe follows the hardware: the scaling rules, and the same config on 1 and 2 CPU processes
(gloo), whose learning rates after the same samples differ by exactly the rule's factor (linear), or
coincide at an equal global batch made by accumulation (none)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from doughflow.preprocessing import Preprocessing
from doughflow.training.job import TrainJob, TrainResult, load_result
from doughflow.training.launch import start
from doughflow.training.loop import run_training
from doughflow.training.recipe import lr_scale, training_recipe
from tests.support.configs import tiny_train_config
from tests.support.sample_data import pizza_columns


@pytest.mark.parametrize(
    "rule, batch, reference, expected",
    [
        ("none", 512, 64, 1.0),
        ("linear", 512, 64, 8.0),
        ("linear", 32, 64, 0.5),
        ("sqrt", 256, 64, 2.0),
        ("sqrt", 32, 64, math.sqrt(0.5)),
    ],
)
def test_scaling_rules(rule, batch, reference, expected):
    assert lr_scale(rule, batch, reference) == pytest.approx(expected, rel=1e-15)


def test_the_recipe_names_what_ran():
    cfg = tiny_train_config(
        micro_batch_size=64,
        gradient_accumulation_steps=2,
        learning_rate=0.003,
        warmup_samples=3200,
        scaling={"rule": "sqrt", "reference_global_batch": 64},
    )
    recipe = training_recipe(cfg, 8, "cuda")
    assert (recipe.global_batch_size, recipe.lr_scale) == (1024, 4.0)
    assert recipe.effective_learning_rate == pytest.approx(0.012) and recipe.schedule_unit == "samples"
    assert recipe.describe() == (
        "8 process(es) on cuda; global batch 1024 = micro batch 64 x accumulation 2 x 8; "
        "learning rate 0.003 x sqrt(1024/64) = x 4 -> 0.012; warm-up 3200 samples"
    )
    plain = training_recipe(tiny_train_config(), 1, "cpu")
    assert plain.effective_learning_rate == plain.learning_rate and plain.schedule_unit == "steps"
    assert json.loads(json.dumps(plain.as_dict())) == plain.as_dict()


# 200 training rows in pieces of 25 deal 100 rows to each of 2 ranks: micro-batches of 16 give 12
# a epoch on one process and 6 on each of two, the same 192 samples, so both runs' schedules span them.
BASE = dict(
    epochs=1,
    micro_batch_size=16,
    warmup_samples=64,
    checkpoint_every_steps=0,
    loader={"num_workers": 0, "piece_rows": 25},
)
LINEAR = dict(BASE, scaling={"rule": "linear", "reference_global_batch": 16})
NONE = dict(BASE, scaling={"rule": "none"})


def _job(shards, out_dir: Path, processes: int, **overrides) -> TrainJob:
    cfg = tiny_train_config(**overrides, launcher={"num_processes": processes})
    return TrainJob(shards[:2], [], pizza_columns(), 5, cfg, Preprocessing(64), str(out_dir), "fp")


@pytest.fixture(scope="module")
def runs(tiny_shards, tmp_path_factory) -> dict[str, TrainResult]:
    """Two 2-process runs (launched together), and their 1-process counterparts in this process."""
    out = tmp_path_factory.mktemp("recipe")
    launched = {
        name: _job(tiny_shards, out / name, 2, **overrides)
        for name, overrides in (("linear_2", LINEAR), ("none_2", NONE))
    }
    processes = {name: start(job, job.cfg.launcher) for name, job in launched.items()}
    results = {
        "linear_1": run_training(_job(tiny_shards, out / "linear_1", 1, **LINEAR)),
        "none_1": run_training(_job(tiny_shards, out / "none_1", 1, **NONE, gradient_accumulation_steps=2)),
    }
    for name, process in processes.items():
        assert process.wait(timeout=600) == 0, f"{name} failed: see {launched[name].out_dir}"
        results[name] = load_result(launched[name].out_dir)
    return results


def lr_by_samples(result: TrainResult) -> dict[int, float]:
    """The learning rate of each update, keyed by the samples seen once it is made."""
    batch = result.recipe["global_batch_size"]
    return {(update + 1) * batch: lr for update, lr in enumerate(result.history["step_lr"])}


def test_linear_rule_scales_the_same_curve_by_the_global_batch_ratio(runs):
    one, two = runs["linear_1"], runs["linear_2"]
    assert (one.recipe["world_size"], one.recipe["global_batch_size"]) == (1, 16)
    assert (two.recipe["world_size"], two.recipe["global_batch_size"]) == (2, 32)
    factor = two.recipe["lr_scale"] / one.recipe["lr_scale"]
    assert factor == 2.0 and two.recipe["effective_learning_rate"] == 2 * one.recipe["effective_learning_rate"]
    small, large = lr_by_samples(one), lr_by_samples(two)
    assert len(small) == 12 and len(large) == 6 and max(small) == max(large) == 192
    for seen, lr in large.items():  # every sample count both runs reach
        assert lr == factor * small[seen]
    assert large[64] == two.recipe["effective_learning_rate"]  # warm-up ends at sample 64 in both runs


def test_rule_none_and_an_equal_global_batch_give_one_curve(runs):
    accumulated, launched = runs["none_1"], runs["none_2"]
    assert accumulated.recipe["gradient_accumulation_steps"] == 2 and launched.recipe["world_size"] == 2
    assert accumulated.recipe["global_batch_size"] == launched.recipe["global_batch_size"] == 32
    assert accumulated.recipe["lr_scale"] == launched.recipe["lr_scale"] == 1.0
    assert lr_by_samples(accumulated) == lr_by_samples(launched)
    assert accumulated.global_steps == launched.global_steps == 6


def test_the_recipe_is_written_where_a_reader_looks(runs):
    for result in runs.values():
        out = Path(result.model_path).parent
        history = json.loads((out / "history.json").read_text())
        assert history["recipe"] == result.recipe and history["batch_size"] == result.recipe["global_batch_size"]
        assert len(history["step_lr"]) == result.global_steps
        ds_config = json.loads((out / "ds_config.json").read_text())["doughflow"]
        assert ds_config["recipe"] == result.recipe
        assert ds_config["optimizer"]["lr"] == result.recipe["effective_learning_rate"]
        assert ds_config["scheduler"]["unit"] == "samples" and ds_config["scheduler"]["warmup_samples"] == 64
