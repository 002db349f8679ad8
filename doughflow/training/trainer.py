"""Train a counter with DeepSpeed, in-process for world size 1.

DeepSpeed owns the optimisation loop (ZeRO, precision, clipping, accumulation, checkpoints) so the
same config scales from this CPU to many GPUs. For one process we avoid its JIT op builds, which
cost minutes on a cold machine and buy nothing without peers (see shared NOTES): the shm comm op is
marked incompatible and the optimizer is a plain torch one.

Checkpoints are written every epoch with the epoch number in ``client_state``; a rerun finds the
latest and continues, and since each epoch's order derives from (seed, epoch), the continued run
sees exactly the batches the uninterrupted one would have.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from doughflow.config import TrainConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training.data import ArraySplit
from doughflow.training.models import build_model

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model_path: str
    history_path: str
    ds_config_path: str
    epochs_run: int
    resumed_from_epoch: int
    first_loss: float
    final_loss: float
    best_epoch: int
    seconds: float
    images_per_second: float
    history: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_single_process_env() -> None:
    """torch.distributed needs a rendezvous even alone; loopback with a free port never collides."""
    defaults = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MASTER_PORT", str(_free_port()))


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def deepspeed_config(cfg: TrainConfig, device: torch.device) -> dict:
    config: dict = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "zero_optimization": {"stage": cfg.zero_stage},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if cfg.gradient_clipping > 0:
        config["gradient_clipping"] = cfg.gradient_clipping
    if cfg.precision != "fp32":
        # BatchNorm keeps fp32 running stats, which DeepSpeed's bf16 engine rejects; autocast works.
        config["torch_autocast"] = {"enabled": True, "dtype": "bfloat16" if cfg.precision == "bf16" else "float16"}
    return config


def warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotations and flips change no count, so they are free extra data for a counter."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    batch = torch.rot90(batch, k, dims=(2, 3))
    if bool(torch.randint(0, 2, (1,), generator=generator)):
        batch = torch.flip(batch, dims=(3,))
    return batch


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, preprocessing: Preprocessing, batch_size: int = 256,
            device: torch.device | None = None) -> np.ndarray:
    model.eval()
    device = device or next(model.parameters()).device
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = preprocessing.to_tensor(images[start:start + batch_size]).to(device)
        outputs.append(model(batch).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def quick_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    if len(target) == 0:
        return {"mae": float("nan"), "exact_count_accuracy": float("nan")}
    return {
        "mae": float(np.abs(pred - target).mean()),
        "exact_count_accuracy": float((np.rint(np.clip(pred, 0, None)) == target).mean()),
    }


def _latest_checkpoint(checkpoint_dir: Path) -> str | None:
    latest = checkpoint_dir / "latest"
    return latest.read_text().strip() if latest.exists() else None


def train_model(train: ArraySplit, val: ArraySplit, num_classes: int, cfg: TrainConfig,
                preprocessing: Preprocessing, out_dir: Path) -> TrainResult:
    import deepspeed
    import deepspeed.ops

    if len(train) == 0:
        raise ValueError("training split is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = out_dir / "checkpoints"
    seed_everything(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = resolve_device(cfg.device)
    ensure_single_process_env()
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)

    model = build_model(cfg.model.name, num_classes=num_classes, width=cfg.model.width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    batch = cfg.micro_batch_size * cfg.gradient_accumulation_steps
    steps_per_epoch = max(1, len(train) // cfg.micro_batch_size)
    total_updates = max(1, cfg.epochs * steps_per_epoch // cfg.gradient_accumulation_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, total_updates))
    ds_config = deepspeed_config(cfg, device)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config)
    ds_config_path = out_dir / "ds_config.json"
    ds_config_path.write_text(json.dumps(ds_config, indent=2))

    history: dict = {"step_loss": [], "epoch": [], "batch_size": batch}
    start_epoch = 0
    best = {"epoch": -1, "score": -1.0}
    tag = _latest_checkpoint(checkpoint_dir)
    if tag:
        _, client_state = engine.load_checkpoint(str(checkpoint_dir), tag=tag)
        start_epoch = int(client_state["epoch"]) + 1
        history = client_state["history"]
        best = client_state["best"]
        log.info("resumed from checkpoint %s (epoch %d done)", tag, start_epoch - 1)

    targets = torch.from_numpy(train.targets)
    images_u8 = torch.from_numpy(train.images)
    started = time.perf_counter()
    seen = 0
    for epoch in range(start_epoch, cfg.epochs):
        engine.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train))
        augment_rng = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        epoch_losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", mininterval=2.0, disable=None)
        epoch_start = time.perf_counter()
        for step in bar:
            index = torch.from_numpy(order[step * cfg.micro_batch_size:(step + 1) * cfg.micro_batch_size])
            inputs = augment(preprocessing.to_tensor(images_u8[index]), augment_rng).to(device, non_blocking=True)
            outputs = engine(inputs)
            loss = torch.nn.functional.mse_loss(outputs.float(), targets[index].to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1} step {step}: stopping")
            engine.backward(loss)
            engine.step()
            value = float(loss.detach())
            epoch_losses.append(value)
            history["step_loss"].append(value)
            seen += len(index)
            if step % cfg.log_every_steps == 0:
                rate = (step + 1) * cfg.micro_batch_size / (time.perf_counter() - epoch_start)
                bar.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:.0f}")
        val_metrics = quick_metrics(predict(engine.module, val.images, preprocessing, device=device), val.targets) if len(val) else {}
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(epoch_losses)), "lr": scheduler.get_last_lr()[0],
                  "seconds": time.perf_counter() - epoch_start, **{f"val_{k}": v for k, v in val_metrics.items()}}
        history["epoch"].append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))
        score = val_metrics.get("exact_count_accuracy", -record["train_loss"])
        if score >= best["score"]:
            best = {"epoch": epoch + 1, "score": float(score)}
            torch.save(engine.module.state_dict(), out_dir / "best_model.pt")
        engine.save_checkpoint(str(checkpoint_dir), tag=f"epoch-{epoch + 1:04d}",
                               client_state={"epoch": epoch, "history": history, "best": best})
    seconds = time.perf_counter() - started

    model_path = out_dir / "model.pt"
    best_path = out_dir / "best_model.pt"
    state = torch.load(best_path, map_location="cpu") if best_path.exists() else engine.module.state_dict()
    torch.save(state, model_path)
    history_path = out_dir / "history.json"
    history_path.write_text(json.dumps(history))
    losses = history["step_loss"]
    k = max(1, min(10, len(losses) // 5))
    return TrainResult(
        model_path=str(model_path), history_path=str(history_path), ds_config_path=str(ds_config_path),
        epochs_run=cfg.epochs - start_epoch, resumed_from_epoch=start_epoch,
        first_loss=float(np.mean(losses[:k])), final_loss=float(np.mean(losses[-k:])),
        best_epoch=best["epoch"], seconds=seconds, images_per_second=seen / seconds if seconds > 0 else 0.0,
        history=history,
    )


def load_trained_model(model_path: str | Path, num_classes: int, cfg: TrainConfig) -> torch.nn.Module:
    model = build_model(cfg.model.name, num_classes=num_classes, width=cfg.model.width)
    model.load_state_dict(torch.load(model_path, map_location="cpu"))
    return model.eval()


__all__ = ["TrainResult", "train_model", "load_trained_model", "predict", "deepspeed_config"]
