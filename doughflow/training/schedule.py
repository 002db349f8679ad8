"""How many steps a run makes, how big each is, and the learning rate at each.

An epoch trains a whole number of optimizer updates: the micro-batches a rank's stream yields in it,
rounded down to a multiple of ``gradient_accumulation_steps``, so an update never straddles two
epochs and a resume at an epoch boundary starts on a fresh accumulation. The LR schedule spans the
updates of every epoch. The global batch (micro batch x accumulation x world size) is computed here
only; the loop's history and the bundle's DeepSpeed config both read it.

Schedules in samples: with ``warmup_samples`` set, the learning-rate factor of an update is a function
of the samples seen once it is made, (update + 1) x global batch, for warm-up and decay alike, so runs
with global batches of 16 and 32 give the same factor after the same samples (each at its own
updates). With ``warmup_steps`` the factor is the original one per update, kept bit for bit so that
configs written in steps train as before: its warm-up counts the update being made and its decay the
updates already made, which are the same samples only at one global batch. Checkpoints in samples fall
on the first update at or after each multiple of ``checkpoint_every_samples``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from doughflow.config import TrainConfig


def settled_micro_batch(cfg: TrainConfig) -> int:
    """The micro batch of a config whose ``auto`` has been settled (doughflow.training.micro_batch)."""
    if cfg.micro_batch_size == "auto":
        raise ValueError("train.micro_batch_size is auto: settle it first (doughflow.training.micro_batch)")
    return cfg.micro_batch_size


def global_batch_size(cfg: TrainConfig, world_size: int) -> int:
    """Samples behind one optimizer update: micro batch x accumulation steps x ranks (a settled micro batch)."""
    return settled_micro_batch(cfg) * cfg.gradient_accumulation_steps * world_size


def accumulation_for(global_batch: int, micro_batch: int, world_size: int) -> int:
    """Accumulation steps that make ``micro_batch`` x them x ``world_size`` equal ``global_batch`` exactly."""
    if global_batch % (micro_batch * world_size):
        raise ValueError(
            f"train.global_batch_size {global_batch} is not a whole number of micro batches of "
            f"{micro_batch} on each of {world_size} processes: make it a multiple of {micro_batch * world_size}"
        )
    return global_batch // (micro_batch * world_size)


def split_global_batch(global_batch: int, world_size: int, largest_micro: int) -> tuple[int, int]:
    """(micro batch, accumulation) for ``global_batch`` over ``world_size`` ranks with the fewest accumulation
    steps whose micro batch is at most ``largest_micro`` and divides the rank's share exactly."""
    if global_batch % world_size:
        raise ValueError(f"train.global_batch_size {global_batch} does not split over {world_size} processes")
    per_rank = global_batch // world_size
    for accumulation in range(max(1, -(-per_rank // max(1, largest_micro))), per_rank + 1):
        if per_rank % accumulation == 0:
            return per_rank // accumulation, accumulation
    return 1, per_rank


@dataclass(frozen=True)
class StepPlan:
    """Micro-batches each rank trains per epoch (multiples of the accumulation) and the run's updates."""

    epoch_steps: list[int]
    total_updates: int


def plan_steps(micro_batches: Sequence[int], cfg: TrainConfig, world_size: int, train_rows: int) -> StepPlan:
    """The plan for a rank whose stream yields ``micro_batches[e]`` full micro-batches in epoch ``e``.

    Raises ValueError, naming the settings to change, when some epoch has no whole update.
    """
    accumulation = cfg.gradient_accumulation_steps
    epoch_steps = [count // accumulation * accumulation for count in micro_batches]
    if not epoch_steps or min(epoch_steps) == 0:
        raise ValueError(
            f"the training split ({train_rows} rows) gives some rank or epoch "
            f"no full step of micro batch {cfg.micro_batch_size} x accumulation {accumulation} "
            f"x world size {world_size}: lower train.micro_batch_size or train.loader.piece_rows"
        )
    return StepPlan(epoch_steps, max(1, sum(epoch_steps) // accumulation))


def lr_factor(cfg: TrainConfig, total_updates: int, global_batch: int | None = None) -> Callable[[int], float]:
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant (a LambdaLR factor per update).

    In samples (``warmup_samples`` set, ``global_batch`` needed) or in updates (``warmup_steps``); see the
    module docstring.
    """
    if cfg.warmup_samples is not None:
        if global_batch is None:
            raise ValueError("a schedule in samples (train.warmup_samples) needs the global batch")
        return _samples_factor(cfg, cfg.warmup_samples, total_updates * global_batch, global_batch)
    warmup = cfg.warmup_steps

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return _decay(cfg, min(1.0, (step - warmup) / max(1, total_updates - warmup)))

    return factor


def _decay(cfg: TrainConfig, progress: float) -> float:
    floor = cfg.min_lr_ratio
    if cfg.lr_schedule == "constant":
        return 1.0
    if cfg.lr_schedule == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _samples_factor(cfg: TrainConfig, warmup: int, total: int, global_batch: int) -> Callable[[int], float]:
    """The factor of update ``step`` from the samples seen once it is made: one curve for every global batch."""

    def factor(step: int) -> float:
        seen = (step + 1) * global_batch
        if seen < warmup:
            return seen / warmup
        return _decay(cfg, min(1.0, (seen - warmup) / max(1, total - warmup)))

    return factor


def checkpoint_due(cfg: TrainConfig, updates_done: int, global_batch: int) -> bool:
    """Whether the update that made ``updates_done`` ends a checkpoint interval (in samples or updates)."""
    if cfg.checkpoint_every_samples is not None:
        every = cfg.checkpoint_every_samples
        return every > 0 and updates_done * global_batch // every > (updates_done - 1) * global_batch // every
    return cfg.checkpoint_every_steps > 0 and updates_done % cfg.checkpoint_every_steps == 0
