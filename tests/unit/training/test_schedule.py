"""The step plan, the global batch and the LR schedule."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.training.engine import resolved_ds_config
from doughflow.training.schedule import (
    accumulation_for,
    checkpoint_due,
    global_batch_size,
    lr_factor,
    plan_steps,
    split_global_batch,
)
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
@given(
    warmup=st.integers(0, 50),
    total=st.integers(1, 500),
    floor=st.floats(0.0, 1.0),
    schedule=st.sampled_from(["cosine", "linear", "constant"]),
)
def test_factor_stays_between_floor_and_one_and_never_rises_after_warmup(warmup, total, floor, schedule):
    factor = lr_factor(tiny_train_config(warmup_steps=warmup, min_lr_ratio=floor, lr_schedule=schedule), total)
    values = [factor(step) for step in range(total + warmup + 5)]
    assert all(0 < v <= 1 + 1e-12 for v in values[:warmup])
    decay = values[warmup:]
    assert all(floor - 1e-12 <= v <= 1 + 1e-12 and math.isfinite(v) for v in decay)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(decay, decay[1:]))


def test_accumulation_keeps_the_global_batch_or_names_the_setting():
    assert accumulation_for(256, 32, 2) == 4
    with pytest.raises(ValueError, match=r"train.global_batch_size 100 .* multiple of 64"):
        accumulation_for(100, 32, 2)


@settings(max_examples=200, deadline=None)
@given(per_rank=st.integers(1, 2000), world_size=st.integers(1, 8), largest=st.integers(1, 4096))
def test_a_global_batch_splits_exactly_with_the_fewest_accumulation_steps(per_rank, world_size, largest):
    micro, accumulation = split_global_batch(per_rank * world_size, world_size, largest)
    assert micro * accumulation * world_size == per_rank * world_size and micro <= largest
    # no smaller accumulation gives a whole micro-batch that fits
    assert not any(per_rank % fewer == 0 and per_rank // fewer <= largest for fewer in range(1, accumulation))


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused():
    with pytest.raises(ValueError, match="does not split over 3 processes"):
        split_global_batch(64, 3, 64)


@settings(max_examples=100, deadline=None)
@given(
    batch=st.sampled_from([8, 16, 32, 64]),
    times=st.sampled_from([2, 4]),
    warmup=st.integers(0, 1024),
    updates=st.integers(1, 64),
    schedule=st.sampled_from(["cosine", "linear", "constant"]),
)
def test_in_samples_every_global_batch_follows_one_curve(batch, times, warmup, updates, schedule):
    """After the same samples, global batches of B and kB give the same factor (each at its own update)."""
    cfg = tiny_train_config(warmup_samples=warmup, lr_schedule=schedule, min_lr_ratio=0.05)
    total = updates * times * batch  # samples of the run, the same for both
    small = lr_factor(cfg, total // batch, batch)
    large = lr_factor(cfg, total // (times * batch), times * batch)
    for update in range(total // (times * batch)):
        seen = (update + 1) * times * batch
        assert large(update) == small(seen // batch - 1)
    if warmup < total:  # the last update ends the decay
        assert small(total // batch - 1) == pytest.approx(1.0 if schedule == "constant" else 0.05)


def test_warmup_in_samples_rises_to_one_at_the_warmup_sample():
    factor = lr_factor(tiny_train_config(warmup_samples=64, lr_schedule="constant"), total_updates=10, global_batch=16)
    assert [factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    with pytest.raises(ValueError, match="global batch"):
        lr_factor(tiny_train_config(warmup_samples=64), total_updates=10)


@pytest.mark.parametrize("batch", [16, 32, 48])
def test_checkpoints_in_samples_fall_at_the_first_update_past_each_interval(batch):
    cfg = tiny_train_config(checkpoint_every_samples=96)
    due = [update for update in range(1, 41) if checkpoint_due(cfg, update, batch)]
    assert [update * batch for update in due] == [-(-k * 96 // batch) * batch for k in range(1, 40 * batch // 96 + 1)]
    assert not any(checkpoint_due(tiny_train_config(checkpoint_every_samples=0), u, batch) for u in range(1, 41))


def test_checkpoints_in_steps_are_unchanged():
    cfg = tiny_train_config(checkpoint_every_steps=3)
    assert [u for u in range(1, 13) if checkpoint_due(cfg, u, 999)] == [3, 6, 9, 12]
