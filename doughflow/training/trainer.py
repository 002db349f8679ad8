"""Train a counter with DeepSpeed: one loop for one process or every rank of a launched job.

DeepSpeed owns the optimisation step (ZeRO, precision, clipping, accumulation, checkpoint state) so
the same config scales from this CPU to many GPUs. Without peers we avoid its JIT op builds, which
cost minutes on a cold machine and buy nothing here (see shared NOTES): the shm comm op is marked
incompatible (it only speeds up CPU inference all-reduce; gloo does the training collectives) and
the optimizer is a plain torch one.

Resume: checkpoints (every ``checkpoint_every_steps`` optimizer steps and at each epoch end) record
the epoch, the micro-batches done in it, RNG states and history. The data stream is a pure function
of (seed, epoch, rank, worker), so a rerun loads the latest checkpoint, tells the stream how many
batches to skip, and trains on exactly the batches the uninterrupted run would have: on a CPU the
final weights are bit-identical.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import math
import os
import random
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from doughflow.config import TrainConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training import checkpoint as ckpt
from doughflow.training.control import await_verdict, publish_epoch
from doughflow.training.engine import backward_step, build_engine, forward_loss, resolved_ds_config
from doughflow.training.progress import write_progress
from doughflow.training.models import build_model
from doughflow.training.streaming import Columns, ParquetStream, ShardRef, make_loader

log = logging.getLogger(__name__)


class DataExhaustedError(RuntimeError):
    """A rank's stream ended before the planned number of steps (rows were skipped as bad)."""


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
    resumed_from_step: int = 0
    global_steps: int = 0
    world_size: int = 1
    stopped_early: bool = False
    skipped_steps: int = 0
    bad_rows: int = 0
    weights_sha256: str = ""


@dataclass
class TrainJob:
    """Everything a training process needs, JSON-serialisable so launched ranks can read it."""

    train_shards: list[ShardRef]
    val_shards: list[ShardRef]
    columns: Columns
    num_classes: int
    cfg: TrainConfig
    preprocessing: Preprocessing
    out_dir: str
    data_fingerprint: str = ""
    # A folder for the epoch handshake with a tuner (doughflow.training.control); empty: none.
    control_dir: str = ""
    problem: str = "count"  # count: MSE on counts; classification: cross-entropy on logits (see doughflow.data.adapters)

    def to_json(self) -> str:
        return json.dumps({"train_shards": [asdict(s) for s in self.train_shards],
                           "val_shards": [asdict(s) for s in self.val_shards],
                           "columns": asdict(self.columns), "num_classes": self.num_classes,
                           "cfg": self.cfg.model_dump(mode="json"), "preprocessing": asdict(self.preprocessing),
                           "out_dir": self.out_dir, "data_fingerprint": self.data_fingerprint,
                           "control_dir": self.control_dir, "problem": self.problem}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "TrainJob":
        raw = json.loads(text)
        columns = raw["columns"]
        pre = raw["preprocessing"]
        return cls([ShardRef(**s) for s in raw["train_shards"]], [ShardRef(**s) for s in raw["val_shards"]],
                   Columns(columns["id"], columns["image"], tuple(columns["targets"])), raw["num_classes"],
                   TrainConfig.model_validate(raw["cfg"]),
                   Preprocessing(pre["image_size"], tuple(pre["mean"]), tuple(pre["std"]), pre.get("problem", "count")),
                   raw["out_dir"], raw.get("data_fingerprint", ""), raw.get("control_dir", ""), raw.get("problem", "count"))


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
    launched = "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_WORLD_SIZE" in os.environ
    if launched or torch.distributed.is_initialized():
        return  # a launcher's rendezvous, or the group this process already joined
    # An inherited MASTER_PORT (a parent process's, or an exported one) would collide with any
    # other run on this host, so a process training alone always takes a fresh port.
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def lr_factor(cfg: TrainConfig, total_updates: int):
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant."""
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


def warmup_cosine(warmup: int, total: int):
    """The skeleton's schedule (cosine to 0.02), kept for callers that build one by hand."""
    return lr_factor(TrainConfig(warmup_steps=warmup), total)


def import_model_module(cfg: TrainConfig) -> None:
    if cfg.model.import_module:
        importlib.import_module(cfg.model.import_module)


def make_model(cfg: TrainConfig, num_classes: int, problem: str = "count") -> torch.nn.Module:
    import_model_module(cfg)
    return build_model(cfg.model.name, num_classes=num_classes, problem=problem, width=cfg.model.width, **cfg.model.options)


def problem_loss(problem: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE on counts; cross-entropy of logits against one-hot targets (class probabilities) for classification."""
    if problem == "classification":
        return torch.nn.functional.cross_entropy(outputs, targets)
    return torch.nn.functional.mse_loss(outputs, targets)


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, preprocessing: Preprocessing, batch_size: int = 256,
            device: torch.device | None = None) -> np.ndarray:
    model.eval()
    device = device or next(model.parameters()).device
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = preprocessing.to_tensor(torch.as_tensor(images[start:start + batch_size]).to(device))
        outputs.append(model(batch).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def quick_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    if len(target) == 0:
        return {"mae": float("nan"), "exact_count_accuracy": float("nan")}
    return {
        "mae": float(np.abs(pred - target).mean()),
        "exact_count_accuracy": float((np.rint(np.clip(pred, 0, None)) == target).mean()),
    }


@torch.no_grad()
def validate(model: torch.nn.Module, loader, normalize, device: torch.device,
             autocast_dtype: torch.dtype | None, problem: str = "count") -> dict[str, float]:
    """Streamed val metrics: sums per batch, so the val split never sits in memory.

    The sums stay on the device and are read once at the end: a read per batch would make a GPU
    wait for its host between batches.
    """
    model.eval()
    error_sum = torch.zeros((), dtype=torch.float64, device=device)
    exact = torch.zeros((), dtype=torch.int64, device=device)
    cells = 0
    for batch in loader:
        inputs = normalize(batch["images"].to(device, non_blocking=True))
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            pred = model(inputs).float()
        target = batch["targets"].to(device, non_blocking=True)
        if problem == "classification":
            error_sum += torch.nn.functional.cross_entropy(pred, target, reduction="sum").double()
            exact += (pred.argmax(dim=1) == target.argmax(dim=1)).sum()
            cells += len(target)
        else:
            error_sum += (pred - target).abs().sum().double()
            exact += (torch.round(pred.clamp(min=0)) == target).sum()
            cells += target.numel()
    model.train()
    if cells == 0:
        return {}
    error, hits = float(error_sum), int(exact)
    if problem == "classification":
        return {"loss": error / cells, "accuracy": hits / cells}
    return {"mae": error / cells, "exact_count_accuracy": hits / cells}


def configure_determinism(cfg: TrainConfig, device: torch.device) -> None:
    """CPU kernels are deterministic for a fixed thread count; GPUs need cuDNN/cuBLAS told so."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)


class Normalizer:
    """uint8 NHWC batch on the device -> normalised float NCHW, with mean/std already on the device.

    Converting after the copy moves 4x fewer bytes over PCIe, and the permuted view keeps the
    channels-last layout that GPU convolutions prefer.
    """

    def __init__(self, preprocessing: Preprocessing, device: torch.device):
        self.mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        # Same operations in the same order as Preprocessing.to_tensor, so the values are bit-identical.
        return images_u8.permute(0, 3, 1, 2).float().div_(255.0).sub_(self.mean).div_(self.std)


class LossLog:
    """Per-step losses without a host sync per step on GPUs (fail policy): checked every log interval."""

    def __init__(self, lazy: bool, history: list[float]):
        self.lazy = lazy
        self.history = history
        self.pending: list[tuple[torch.Tensor, str, list]] = []

    def add(self, loss: torch.Tensor, where: str, ids: list) -> float | None:
        if self.lazy:
            self.pending.append((loss.detach(), where, ids))
            return None
        value = float(loss.detach())
        self.history.append(value)
        return value

    def flush(self) -> float | None:
        if not self.pending:
            return self.history[-1] if self.history else None
        values = torch.stack([p[0] for p in self.pending]).float().cpu().tolist()
        for value, (_, where, ids) in zip(values, self.pending):
            if not math.isfinite(value):
                raise FloatingPointError(nan_message(value, where, ids))
        self.history.extend(values)
        self.pending = []
        return values[-1]


def nan_message(value: float, where: str, ids: list) -> str:
    shown = ", ".join(map(str, ids[:8])) + (" ..." if len(ids) > 8 else "")
    return (f"loss is {value} at {where} (batch sample ids: {shown}); stopping. Lower train.learning_rate, "
            f"check those rows, or set train.on_nan_loss=skip")


def _is_better(score: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(score)
    return score > best + min_delta if mode == "max" else score < best - min_delta


def full_state_dict(engine, zero_stage: int) -> dict | None:
    """Whole fp32 weights; ZeRO-3 must gather them (a collective: every rank calls this)."""
    if zero_stage == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    return {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}


def run_training(job: TrainJob) -> TrainResult | None:
    """Train (or resume) the job; every rank calls this. Rank 0 writes the outputs and gets the result."""
    import deepspeed
    import deepspeed.ops

    cfg = job.cfg
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = out_dir / "checkpoints"
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        ensure_single_process_env()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    configure_determinism(cfg, device)
    # The shm op only accelerates CPU inference all-reduce; without it nothing is JIT-built (private switch,
    # hence the pinned DeepSpeed minor version).
    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    if world_size > 1:
        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo",
                                   timeout=timedelta(minutes=cfg.launcher.timeout_minutes))
    seed_everything(cfg.seed)

    train_stream = ParquetStream(job.train_shards, job.columns, job.preprocessing, batch_size=cfg.micro_batch_size,
                                 loader=cfg.loader, seed=cfg.seed, shuffle=True, augment_cfg=cfg.augment,
                                 rank=rank, world_size=world_size, drop_remainder=True)
    accumulation = cfg.gradient_accumulation_steps
    epoch_steps = [train_stream.steps_per_epoch(e) // accumulation * accumulation for e in range(cfg.epochs)]
    if min(epoch_steps) == 0:
        raise ValueError(f"the training split ({sum(s.rows for s in job.train_shards)} rows) gives some rank or epoch "
                         f"no full step of micro batch {cfg.micro_batch_size} x accumulation {accumulation} "
                         f"x world size {world_size}: lower train.micro_batch_size or train.loader.piece_rows")
    total_updates = max(1, sum(epoch_steps) // accumulation)

    model = make_model(cfg, job.num_classes, job.problem).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_updates))
    engine = build_engine(model, optimizer, scheduler, cfg, device, world_size)
    ds_config_path = out_dir / "ds_config.json"
    if rank == 0:
        ds_config_path.write_text(json.dumps(resolved_ds_config(cfg, device, world_size, total_updates), indent=2))

    expected = ckpt.fingerprint({"cfg": cfg.model_dump(mode="json", exclude={"launcher": {"isolate", "master_port",
                                 "master_addr", "timeout_minutes", "launcher", "hostfile"}, "log_every_steps": True,
                                 "num_threads": True}),
                                 "data": [asdict(s) for s in job.train_shards], "fingerprint": job.data_fingerprint,
                                 "world_size": world_size, "num_classes": job.num_classes,
                                 **({"task": job.problem} if job.problem != "count" else {})})
    state = ckpt.LoopState(fingerprint=expected)
    tag = ckpt.latest_tag(checkpoint_dir)
    if tag:
        _, client_state = engine.load_checkpoint(str(checkpoint_dir), tag=tag)
        if client_state is None:
            raise ckpt.CheckpointMismatchError(f"checkpoint {checkpoint_dir / tag} could not be loaded")
        state = ckpt.LoopState.from_client_state(client_state)
        if state.fingerprint != expected:
            raise ckpt.CheckpointMismatchError(
                f"checkpoint {checkpoint_dir / tag} was written for another config, data or world size; "
                f"delete {checkpoint_dir} to start over, or use a new run id")
        ckpt.load_rng(checkpoint_dir, tag, rank)
        log.info("resumed from %s: epoch %d, %d batches into it", tag, state.epoch + 1, state.batches_done)
    resumed_from = (state.epoch, engine.global_steps)

    val_stream = ParquetStream(job.val_shards, job.columns, job.preprocessing, batch_size=max(64, cfg.micro_batch_size),
                               loader=cfg.loader, shuffle=False, augment_cfg=None, drop_remainder=False)
    autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.precision]
    normalize = Normalizer(job.preprocessing, device)
    lazy_loss = device.type == "cuda" and cfg.on_nan_loss == "fail"
    loss_fn = functools.partial(problem_loss, job.problem)
    losses = LossLog(lazy_loss, state.history["step_loss"])
    history = state.history
    history["batch_size"] = cfg.micro_batch_size * accumulation * world_size
    started = time.perf_counter()
    seen = 0
    bad_rows: dict[int, int] = {}
    epochs_run = 0
    last_report = time.perf_counter()

    def save(tag_name: str) -> None:
        ckpt.save_rng(checkpoint_dir, tag_name, rank)
        # Returns after a barrier: every rank's files of this tag are written.
        engine.save_checkpoint(str(checkpoint_dir), tag=tag_name, client_state=state.to_client_state(), save_latest=False)
        if rank == 0:
            ckpt.mark_latest(checkpoint_dir, tag_name)
            ckpt.prune(checkpoint_dir, cfg.keep_checkpoints)

    for epoch in range(state.epoch, cfg.epochs):
        if state.stopped_early:
            break
        steps = epoch_steps[epoch]
        if state.epoch != epoch or state.batches_done == 0:
            state.epoch, state.batches_done, state.epoch_start_index = epoch, 0, len(history["step_loss"])
        first_step = state.batches_done
        train_stream.set_epoch(epoch, skip_batches=first_step)
        engine.train()
        epoch_start = time.perf_counter()
        epoch_seen = 0
        # Steady-state rate leaves out the first steps (worker start-up, shuffle-buffer fill, kernel autotuning).
        warm_steps = min(10, max(1, (steps - first_step) // 5))
        steady_start, steady_seen = None, 0
        bar = tqdm(total=steps, initial=first_step, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step",
                   mininterval=2.0, disable=None if rank == 0 else True)
        batches = iter(make_loader(train_stream, cfg.loader, device))
        for step in range(first_step, steps):
            try:
                batch = next(batches)
            except StopIteration:
                raise DataExhaustedError(
                    f"rank {rank} ran out of training data at epoch {epoch + 1} step {step} of {steps} after skipping "
                    f"{sum(bad_rows.values())} bad rows; fix or drop the bad rows (see warnings above)") from None
            bad_rows[batch["worker"]] = batch["bad_rows"]
            loss = forward_loss(engine, batch["images"], batch["targets"], normalize, device, loss_fn)
            where = f"epoch {epoch + 1} step {step} (global step {engine.global_steps}, rank {rank})"
            if cfg.on_nan_loss == "skip":
                bad = torch.tensor([0.0 if bool(torch.isfinite(loss)) else 1.0])
                if world_size > 1:
                    torch.distributed.all_reduce(bad)  # every rank must skip the same step
                if bad.item() > 0:
                    state.skipped_steps += 1
                    log.warning("skipping non-finite loss at %s (%d skipped)", where, state.skipped_steps)
                    if state.skipped_steps > cfg.max_skipped_steps:
                        raise FloatingPointError(nan_message(float(loss.detach()), where, batch["ids"])
                                                 + f"; more than train.max_skipped_steps={cfg.max_skipped_steps}")
                    state.batches_done = step + 1
                    continue
            elif not lazy_loss and not bool(torch.isfinite(loss)):
                raise FloatingPointError(nan_message(float(loss.detach()), where, batch["ids"]))
            backward_step(engine, loss)
            losses.add(loss, where, batch["ids"])
            state.batches_done = step + 1
            seen += len(batch["ids"]) * world_size
            epoch_seen += len(batch["ids"]) * world_size
            if (step + 1) % cfg.log_every_steps == 0:
                value = losses.flush()
                rate = epoch_seen / max(1e-9, time.perf_counter() - epoch_start)
                bar.set_postfix(loss=f"{value:.4f}" if value is not None else "-", img_s=f"{rate:.0f}")
                if rank == 0:
                    write_progress(job.out_dir, epoch=epoch, epochs=cfg.epochs, step=step + 1, steps=steps,
                                   loss=value, images_per_second=rate)
                if bar.disable and rank == 0 and time.perf_counter() - last_report > 30:
                    # No terminal (Prefect, CI): a log line stands in for the progress bar.
                    last_report = time.perf_counter()
                    log.info("epoch %d/%d step %d/%d loss %s %.0f img/s", epoch + 1, cfg.epochs, step + 1, steps,
                             f"{value:.4f}" if value is not None else "-", rate)
            bar.update(1)
            if step + 1 == first_step + warm_steps:
                steady_start, steady_seen = time.perf_counter(), epoch_seen
            at_boundary = (step + 1) % accumulation == 0
            if (cfg.checkpoint_every_steps and at_boundary and step + 1 < steps
                    and engine.global_steps % cfg.checkpoint_every_steps == 0):
                losses.flush()
                save(f"step-{engine.global_steps:08d}")
        losses.flush()  # before the clock stops: on GPUs this waits for the last step to finish
        steady_end = time.perf_counter()
        del batches  # stops the loader workers (not part of the steady-state rate)
        bar.close()
        if rank == 0:
            write_progress(job.out_dir, epoch=epoch, epochs=cfg.epochs, step=steps, steps=steps, loss=None,
                           images_per_second=epoch_seen / max(1e-9, steady_end - epoch_start))
        epoch_seconds = time.perf_counter() - epoch_start
        epoch_losses = history["step_loss"][state.epoch_start_index:]
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan"),
                  "lr": scheduler.get_last_lr()[0], "seconds": epoch_seconds,
                  "img_s": epoch_seen / epoch_seconds if epoch_seconds > 0 else 0.0, "global_step": engine.global_steps}
        if steady_start is not None and epoch_seen > steady_seen:
            record["steady_img_s"] = (epoch_seen - steady_seen) / max(1e-9, steady_end - steady_start)
            record["steady_steps"] = steps - first_step - warm_steps
        flags = torch.zeros(2)
        if rank == 0:
            if len(job.val_shards):
                metrics = validate(engine.module, make_loader(val_stream, cfg.loader, device), normalize, device,
                                   autocast_dtype, job.problem)
                record.update({f"val_{k}": v for k, v in metrics.items()})
            metric, mode = cfg.early_stopping.metric, cfg.early_stopping.mode
            if metric not in record:
                metric, mode = "train_loss", "min"
            score = float(record[metric])
            if _is_better(score, state.best_score, mode, cfg.early_stopping.min_delta):
                state.best_score, state.best_epoch, state.epochs_without_improvement = score, epoch + 1, 0
                flags[0] = 1
            else:
                state.epochs_without_improvement += 1
            patience = cfg.early_stopping.patience
            if patience and state.epochs_without_improvement >= patience and epoch + 1 < cfg.epochs:
                flags[1] = 1
                log.info("early stopping after epoch %d: %s has not improved for %d epochs", epoch + 1, metric, patience)
            if job.control_dir:  # a tuner judges every epoch; its stop lands at this boundary, like early stopping
                publish_epoch(job.control_dir, record)
                if epoch + 1 < cfg.epochs and await_verdict(job.control_dir, epoch + 1):
                    flags[1] = 1
                    log.info("stopped after epoch %d: the tuner pruned this run", epoch + 1)
            history["epoch"].append(record)
            log.info("epoch %d: %s", epoch + 1, json.dumps(record))
        if world_size > 1:
            torch.distributed.broadcast(flags, src=0)
        if flags[0] > 0:
            weights = full_state_dict(engine, cfg.zero_stage)
            if rank == 0:
                ckpt.atomic_torch_save(weights, out_dir / "best_model.pt")
        state.stopped_early = bool(flags[1] > 0)
        state.epoch, state.batches_done, state.epoch_start_index = epoch + 1, 0, len(history["step_loss"])
        save(f"step-{engine.global_steps:08d}")
        epochs_run += 1
    seconds = time.perf_counter() - started

    final_weights = full_state_dict(engine, cfg.zero_stage)
    if rank != 0:
        return None
    best_path = out_dir / "best_model.pt"
    weights = torch.load(best_path, map_location="cpu") if best_path.exists() else final_weights
    model_path = out_dir / "model.pt"
    ckpt.atomic_torch_save(weights, model_path)
    ckpt.atomic_torch_save(final_weights, out_dir / "last_model.pt")
    history_path = out_dir / "history.json"
    history_path.write_text(json.dumps(history))
    step_losses = history["step_loss"]
    k = max(1, min(10, len(step_losses) // 5))
    result = TrainResult(
        model_path=str(model_path), history_path=str(history_path), ds_config_path=str(ds_config_path),
        epochs_run=epochs_run, resumed_from_epoch=resumed_from[0],
        first_loss=float(np.mean(step_losses[:k])) if step_losses else float("nan"),
        final_loss=float(np.mean(step_losses[-k:])) if step_losses else float("nan"),
        best_epoch=state.best_epoch, seconds=seconds, images_per_second=seen / seconds if seconds > 0 else 0.0,
        history=history, resumed_from_step=resumed_from[1], global_steps=engine.global_steps, world_size=world_size,
        stopped_early=state.stopped_early, skipped_steps=state.skipped_steps, bad_rows=sum(bad_rows.values()),
        weights_sha256=ckpt.state_dict_hash(final_weights))
    if result.bad_rows:
        log.warning("%d bad rows were skipped (train.loader.on_bad_row=skip)", result.bad_rows)
    (out_dir / "result.json").write_text(json.dumps(asdict(result)))
    return result


def load_result(out_dir: str | Path) -> TrainResult:
    return TrainResult(**json.loads((Path(out_dir) / "result.json").read_text()))


def load_trained_model(model_path: str | Path, num_classes: int, cfg: TrainConfig, problem: str = "count") -> torch.nn.Module:
    model = make_model(cfg, num_classes, problem)
    model.load_state_dict(torch.load(model_path, map_location="cpu"))
    return model.eval()
