"""The DeepSpeed engine as doughflow sets it up, one training micro-step on it, and its whole weights.

DeepSpeed 0.19's defaults at ZeRO-0 make the host wait for the GPU several times a step, and a GPU
that waits for its host idles. Its engine alone reached 0.83 of plain torch on an H200 (ResNet-18,
128 px, bf16: 13.9k img/s against 16.8k). Three things cause the waits, and :func:`build_engine` removes each of them:

- The throughput timer (``timers.throughput``) is on and synchronized by default, so it synchronizes
  the device at every forward and every step. doughflow times its steps itself, so it is off.
- ZeRO-0 gradient clipping (``deepspeed.runtime.utils.clip_grad_norm_``) builds two tensors from
  Python floats on the device, and each is a blocking copy, a stream synchronize. It also takes one
  norm per parameter. We clip with ``torch.nn.utils.clip_grad_norm_`` instead (per-device fused norms,
  nothing read back). The config still says ``gradient_clipping``, and DeepSpeed still decides when
  to clip: it calls the engine's ``clip_fp32_gradients``, which we replace.
- With one data-parallel process the gradient all-reduce is an identity that still flattens every
  gradient and copies it back (38 ms a step for 11M parameters on this CPU). It is skipped, which is
  exact.

ZeRO 1-3 clip and reduce inside DeepSpeed's own optimizers, which are left as they are.
:mod:`doughflow.training.host_sync` finds such waits on any machine; the tests use it.

DeepSpeed's own monitors (TensorBoard, CSV, W&B: ``train.deepspeed.monitor``) pass through into its
config. They do not need the throughput timer: at each optimizer step DeepSpeed 0.19 writes only the
learning rate (a Python float, no device read), and its timing events need ``wall_clock_breakdown``,
which stays off. It no longer writes the loss, so the trainer hands the monitors its own events
(:func:`write_monitor_events`) where it reads the loss anyway, every ``log_every_steps``, and the
validation metrics each epoch; every event's step is the samples trained on, which only grows (W&B
drops a step that goes back).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from doughflow.config import DeepSpeedMonitorConfig, TrainConfig
from doughflow.training.deepspeed_import import import_deepspeed
from doughflow.training.recipe import Recipe, training_recipe
from doughflow.training.schedule import global_batch_size

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine

# torch autocast dtype per train.precision (fp32: none), for what runs outside the engine: validation, memory probes.
AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

MONITOR_DIR = "monitor"  # under the train stage folder, where monitors write unless output_path says otherwise


def monitor_sections(monitor: DeepSpeedMonitorConfig, out_dir: str | None) -> dict:
    """DeepSpeed's ``tensorboard``, ``csv_monitor`` and ``wandb`` sections for the enabled monitors. An
    empty ``output_path`` is ``<out_dir>/monitor`` and an empty ``job_name`` the run id (the name of the
    run folder ``out_dir`` sits in), so runs that share an output_path land side by side."""
    run_id = Path(out_dir).parent.name if out_dir else "doughflow"
    default_path = str(Path(out_dir) / MONITOR_DIR) if out_dir else ""
    sections: dict = {}
    for name, section in (("tensorboard", monitor.tensorboard), ("csv_monitor", monitor.csv_monitor)):
        if section.enabled:
            sections[name] = {
                "enabled": True,
                "output_path": section.output_path or default_path,
                "job_name": section.job_name or run_id,
            }
    if monitor.wandb.enabled:
        wandb = monitor.wandb
        sections["wandb"] = {"enabled": True, "group": wandb.group, "team": wandb.team, "project": wandb.project}
    return sections


def deepspeed_config(cfg: TrainConfig, device: torch.device, out_dir: str | None = None) -> dict:
    """DeepSpeed's config for ``cfg``; ``out_dir`` (the train stage folder) places the monitors' files."""
    config: dict = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "zero_optimization": {"stage": cfg.zero_stage},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
        # On by default, and it synchronizes the device twice a step; the trainer measures throughput.
        "timers": {"throughput": {"enabled": False}},
    }
    if cfg.gradient_clipping > 0:
        config["gradient_clipping"] = cfg.gradient_clipping
    if cfg.precision != "fp32":
        # BatchNorm keeps fp32 running stats, which DeepSpeed's bf16 engine rejects; autocast works.
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16" if cfg.precision == "bf16" else "float16"}
    config.update(monitor_sections(cfg.deepspeed.monitor, out_dir))
    return config


def resolved_ds_config(
    cfg: TrainConfig,
    device: torch.device,
    world_size: int,
    total_updates: int,
    recipe: Recipe | None = None,
    out_dir: str | None = None,
) -> dict:
    """The DeepSpeed config plus what we hand DeepSpeed as objects (optimizer at the recipe's learning
    rate, schedule) and the recipe itself, for the bundle."""
    recipe = recipe or training_recipe(cfg, world_size, device.type)
    warmup = (
        {"warmup_samples": recipe.warmup_samples}
        if recipe.schedule_unit == "samples"
        else {"warmup_steps": recipe.warmup_steps}
    )
    return {
        **deepspeed_config(cfg, device, out_dir),
        "doughflow": {
            "optimizer": {
                "type": "torch.optim.AdamW",
                "lr": recipe.effective_learning_rate,
                "weight_decay": cfg.weight_decay,
            },
            "scheduler": {
                "type": f"warmup_{cfg.lr_schedule}",
                **warmup,
                "unit": recipe.schedule_unit,
                "min_lr_ratio": cfg.min_lr_ratio,
                "total_updates": total_updates,
            },
            "world_size": world_size,
            "device": device.type,
            "seed": cfg.seed,
            # CPU weights are bit-identical only at the same thread count (doughflow.training.process)
            "num_threads": torch.get_num_threads(),
            "global_batch_size": global_batch_size(cfg, world_size),
            "recipe": recipe.as_dict(),
            "engine_changes": engine_changes(cfg, world_size),
        },
    }


def engine_changes(cfg: TrainConfig, world_size: int) -> dict[str, str]:
    """What :func:`build_engine` does differently from DeepSpeed's defaults (the bundle records it)."""
    changes = {"throughput_timer": "off"}
    if cfg.zero_stage == 0 and cfg.gradient_clipping > 0:
        changes["gradient_clipping"] = "torch.nn.utils.clip_grad_norm_"
    if cfg.zero_stage == 0 and world_size == 1:
        changes["gradient_allreduce"] = "skipped (one process: an identity)"
    return changes


def sync_free_clipping(engine: DeepSpeedEngine) -> None:
    """Make the ZeRO-0 engine clip with torch's fused norm, which reads nothing back to the host.

    The result is the same clip (max_norm / (total_norm + 1e-6), capped at 1). After the all-reduce
    every rank holds the same gradients, so every rank computes the same norm without another
    collective.
    """
    max_norm = float(engine.gradient_clipping())
    module = engine.module

    def clip_fp32_gradients() -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)

    engine.clip_fp32_gradients = clip_fp32_gradients


def build_engine(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    cfg: TrainConfig,
    device: torch.device,
    world_size: int,
    out_dir: str | None = None,
) -> Any:
    """``deepspeed.initialize`` with the config above, then the ZeRO-0 changes the module docstring explains."""
    deepspeed = import_deepspeed()

    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=deepspeed_config(cfg, device, out_dir)
    )
    changes = engine_changes(cfg, world_size)
    if "gradient_clipping" in changes:
        sync_free_clipping(engine)
    if "gradient_allreduce" in changes:
        engine.enable_backward_allreduce = False
    return engine


def write_monitor_events(engine: Any, events: list[tuple[str, float, int]]) -> None:
    """Hand (name, value, step) events to DeepSpeed's monitors; nothing when none is enabled. Call on
    rank 0 only: DeepSpeed makes the monitors there."""
    monitor = getattr(engine, "monitor", None)
    if monitor is not None and monitor.enabled:
        monitor.write_events(events)


def forward_loss(
    engine: DeepSpeedEngine,
    images_u8: torch.Tensor,
    targets: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Copy a pinned uint8 batch to the device, normalise it there, forward, loss: nothing is read back."""
    inputs = normalize(images_u8.to(device, non_blocking=True))
    outputs = engine(inputs)
    return loss_fn(outputs.float(), targets.to(device, non_blocking=True))


def backward_step(engine: DeepSpeedEngine, loss: torch.Tensor) -> None:
    """Backward and DeepSpeed's step (accumulation, clipping and the optimizer happen at the boundary)."""
    engine.backward(loss)
    engine.step()


def full_state_dict(engine: DeepSpeedEngine, zero_stage: int) -> dict[str, torch.Tensor] | None:
    """Whole fp32 weights; ZeRO-3 must gather them (a collective: every rank calls this; only rank 0
    gets them, the others None)."""
    if zero_stage == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    return {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
