"""How many steps a run makes, how big each is, and the learning rate at each.

An epoch trains a whole number of optimizer updates: the micro-batches a rank's stream yields in it,
rounded down to a multiple of ``gradient_accumulation_steps``, so an update never straddles two
epochs and a resume at an epoch boundary starts on a fresh accumulation. The LR schedule spans the
updates of every epoch. The global batch (micro batch x accumulation x world size) is computed here
only; the loop's history and the bundle's DeepSpeed config both read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from doughflow.config import TrainConfig


def global_batch_size(cfg: TrainConfig, world_size: int) -> int:
    """Samples behind one optimizer update: micro batch x accumulation steps x ranks."""
    return cfg.micro_batch_size * cfg.gradient_accumulation_steps * world_size


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
        raise ValueError(f"the training split ({train_rows} rows) gives some rank or epoch "
                         f"no full step of micro batch {cfg.micro_batch_size} x accumulation {accumulation} "
                         f"x world size {world_size}: lower train.micro_batch_size or train.loader.piece_rows")
    return StepPlan(epoch_steps, max(1, sum(epoch_steps) // accumulation))


def lr_factor(cfg: TrainConfig, total_updates: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant (a LambdaLR factor per update)."""
    warmup, floor = cfg.warmup_steps, cfg.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = min(1.0, (step - warmup) / max(1, total_updates - warmup))
        if cfg.lr_schedule == "constant":
            return 1.0
        if cfg.lr_schedule == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
