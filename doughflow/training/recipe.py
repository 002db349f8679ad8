"""The recipe a run actually trains with, computed in one place: who trains (processes, device), the
global batch and how it is made up, the effective learning rate and the schedule's units.

Why: moving from 1 process to 8, or doubling the micro-batch to fill a bigger GPU, multiplies the
global batch. With the learning rate as written, the same experiment becomes another one: fewer
updates over the same samples, each with the step size tuned for a smaller batch. ``train.scaling``
makes the learning rate follow the global batch B from the batch it was chosen for, B0:

- ``linear``: lr x B / B0. Goyal et al. (2017) trained ResNet-50 on ImageNet at batches up to 8k with
  SGD this way, with a warm-up, matching the small-batch accuracy.
- ``sqrt``: lr x sqrt(B / B0). Malladi et al. (NeurIPS 2022) derived it as the rule that keeps Adam and
  RMSprop on the same trajectory when the batch changes; doughflow trains with AdamW.
- ``none``: lr as written (the default, so configs written before the rule train as they did).

Measured with ``benchmarks/batch_scaling.py`` (pizza counter, 1,600 training images, 6 epochs, warm-up
in samples, 2 CPU cores): at the reference batch of 64 validation exact-count accuracy was 0.398; at 256
(4x, by accumulation) it fell to 0.183 with ``none`` and came back to 0.409 with ``sqrt`` and 0.410
with ``linear``: the same samples with a quarter of the updates need the larger step.

The recipe is logged at start, kept in ``history.json`` and ``result.json``, written into the run's
``ds_config.json`` (which the bundle ships), the report and the model card, and recorded in the run
registry for ``flows.compare``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from doughflow.config import TrainConfig
from doughflow.training.schedule import global_batch_size, settled_micro_batch


def lr_scale(rule: str, global_batch: int, reference_global_batch: int | None) -> float:
    """The factor ``rule`` gives the learning rate at ``global_batch`` (1.0 for ``none``)."""
    if rule == "none":
        return 1.0
    if not reference_global_batch:
        raise ValueError(f"train.scaling.rule {rule} needs train.scaling.reference_global_batch")
    ratio = global_batch / reference_global_batch
    return ratio if rule == "linear" else math.sqrt(ratio)


@dataclass(frozen=True)
class Recipe:
    """What one run trained with, as a reader of its outputs needs it (JSON-ready through :meth:`as_dict`)."""

    world_size: int
    device: str
    micro_batch_size: int
    gradient_accumulation_steps: int
    global_batch_size: int
    learning_rate: float  # as configured
    scaling_rule: str
    reference_global_batch: int | None
    lr_scale: float
    effective_learning_rate: float
    schedule_unit: str  # samples | steps
    warmup_samples: int | None
    warmup_steps: int | None
    checkpoint_every_samples: int | None
    checkpoint_every_steps: int | None
    micro_batch: dict = field(default_factory=dict)  # how the micro-batch was chosen

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for the log, the report and the model card."""
        ratio = f"{self.global_batch_size}/{self.reference_global_batch}"
        rule = (
            "not scaled (train.scaling.rule none)"
            if self.scaling_rule == "none"
            else f"x {self.scaling_rule}({ratio}) = x {self.lr_scale:.4g}"
        )
        warmup = f"{self.warmup_samples} samples" if self.schedule_unit == "samples" else f"{self.warmup_steps} updates"
        method = self.micro_batch.get("method", "configured")
        chosen = "" if method == "configured" else f" (micro batch by {method})"
        return (
            f"{self.world_size} process(es) on {self.device}; global batch {self.global_batch_size} = micro batch "
            f"{self.micro_batch_size} x accumulation {self.gradient_accumulation_steps} x {self.world_size}{chosen}; "
            f"learning rate {self.learning_rate:.4g} {rule} -> {self.effective_learning_rate:.4g}; "
            f"warm-up {warmup}"
        )

    def headline(self) -> dict:
        """What tells two runs of one experiment on different hardware apart (the run summary and registry)."""
        return {
            "world_size": self.world_size,
            "device": self.device,
            "global_batch_size": self.global_batch_size,
            "micro_batch_size": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "micro_batch_method": self.micro_batch.get("method", "configured"),
            "learning_rate": self.learning_rate,
            "scaling_rule": self.scaling_rule,
            "lr_scale": self.lr_scale,
            "effective_learning_rate": self.effective_learning_rate,
            "schedule_unit": self.schedule_unit,
        }

    @classmethod
    def from_dict(cls, raw: dict) -> Recipe:
        """A recipe read back from result.json or history.json."""
        return cls(**raw)


def training_recipe(cfg: TrainConfig, world_size: int, device: str, micro_batch: dict | None = None) -> Recipe:
    """The recipe of a run with a settled micro-batch on ``world_size`` processes of ``device``."""
    batch = global_batch_size(cfg, world_size)
    scale = lr_scale(cfg.scaling.rule, batch, cfg.scaling.reference_global_batch)
    in_samples = cfg.warmup_samples is not None
    return Recipe(
        world_size=world_size,
        device=device,
        micro_batch_size=settled_micro_batch(cfg),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        global_batch_size=batch,
        learning_rate=cfg.learning_rate,
        scaling_rule=cfg.scaling.rule,
        reference_global_batch=cfg.scaling.reference_global_batch,
        lr_scale=scale,
        effective_learning_rate=cfg.learning_rate * scale if scale != 1.0 else cfg.learning_rate,
        schedule_unit="samples" if in_samples else "steps",
        warmup_samples=cfg.warmup_samples,
        warmup_steps=None if in_samples else cfg.warmup_steps,
        checkpoint_every_samples=cfg.checkpoint_every_samples,
        checkpoint_every_steps=None if cfg.checkpoint_every_samples is not None else cfg.checkpoint_every_steps,
        micro_batch=micro_batch or {"method": "configured"},
    )
