"""The step plan, the global batch and the LR schedule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.training.engine import resolved_ds_config
from doughflow.training.schedule import global_batch_size, lr_factor, plan_steps
from tests.support.configs import tiny_train_config


@pytest.mark.parametrize("micro, accumulation, world_size, expected", [(16, 1, 1, 16), (16, 4, 1, 64), (8, 2, 3, 48)])
def test_global_batch_is_micro_times_accumulation_times_ranks(micro, accumulation, world_size, expected):
    cfg = tiny_train_config(micro_batch_size=micro, gradient_accumulation_steps=accumulation)
    assert global_batch_size(cfg, world_size) == expected
    # the bundle's DeepSpeed config records the same number
    bundled = resolved_ds_config(cfg, torch.device("cpu"), world_size, total_updates=10)["doughflow"]
    assert bundled["global_batch_size"] == expected


@settings(max_examples=200, deadline=None)
@given(micro_batches=st.lists(st.integers(0, 500), min_size=1, max_size=6), accumulation=st.integers(1, 16))
def test_every_epoch_trains_whole_updates(micro_batches, accumulation):
    cfg = tiny_train_config(gradient_accumulation_steps=accumulation)
    if min(micro_batches) < accumulation:
        with pytest.raises(ValueError, match="no full step"):
            plan_steps(micro_batches, cfg, 1, 1000)
        return
    plan = plan_steps(micro_batches, cfg, 1, 1000)
    for planned, available in zip(plan.epoch_steps, micro_batches, strict=True):
        assert planned % accumulation == 0 and available - accumulation < planned <= available
    assert plan.total_updates * accumulation == sum(plan.epoch_steps)


def test_an_epoch_without_a_whole_update_names_the_settings():
    cfg = tiny_train_config(micro_batch_size=32, gradient_accumulation_steps=4)
    with pytest.raises(ValueError) as raised:
        plan_steps([10, 3], cfg, 2, 250)
    message = str(raised.value)
    assert "250 rows" in message and "micro batch 32 x accumulation 4 x world size 2" in message
    assert "train.micro_batch_size" in message and "train.loader.piece_rows" in message


def test_warmup_rises_linearly_then_cosine_falls_to_the_floor():
    factor = lr_factor(tiny_train_config(warmup_steps=4, min_lr_ratio=0.1, lr_schedule="cosine"), total_updates=24)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(4) == 1.0
    assert factor(14) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the decay
    assert factor(24) == pytest.approx(0.1) and factor(100) == pytest.approx(0.1)


def test_linear_and_constant_schedules():
    linear = lr_factor(tiny_train_config(warmup_steps=0, min_lr_ratio=0.0, lr_schedule="linear"), total_updates=10)
    assert [linear(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    constant = lr_factor(tiny_train_config(warmup_steps=2, lr_schedule="constant"), total_updates=10)
    assert [constant(s) for s in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]


@settings(max_examples=100, deadline=None)
@given(warmup=st.integers(0, 50), total=st.integers(1, 500), floor=st.floats(0.0, 1.0),
       schedule=st.sampled_from(["cosine", "linear", "constant"]))
def test_factor_stays_between_floor_and_one_and_never_rises_after_warmup(warmup, total, floor, schedule):
    factor = lr_factor(tiny_train_config(warmup_steps=warmup, min_lr_ratio=floor, lr_schedule=schedule), total)
    values = [factor(step) for step in range(total + warmup + 5)]
    assert all(0 < v <= 1 + 1e-12 for v in values[:warmup])
    decay = values[warmup:]
    assert all(floor - 1e-12 <= v <= 1 + 1e-12 and math.isfinite(v) for v in decay)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(decay, decay[1:]))
