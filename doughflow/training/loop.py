"""Train a counter with DeepSpeed: one loop for one process or every rank of a launched job.

DeepSpeed owns the optimisation step (ZeRO, precision, clipping, accumulation, checkpoint state) so
the same config scales from this CPU to many GPUs. :func:`run_training` reads as its phases: set up
the process, settle the micro-batch (``auto`` finds the largest that fits) and the recipe (global batch,
effective learning rate: :mod:`doughflow.training.recipe`), plan the steps, build the engine, resume
from the latest checkpoint, then per epoch train and judge it, and finally write the outputs.

Resume: checkpoints (every ``checkpoint_every_steps`` optimizer steps or ``checkpoint_every_samples``
samples, and at each epoch end) record
the epoch, the micro-batches done in it, RNG states and history. The data stream is a pure function
of (seed, epoch, rank, worker), so a rerun loads the latest checkpoint, tells the stream how many
batches to skip, and trains on exactly the batches the uninterrupted run would have: on a CPU the
final weights are bit-identical.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from doughflow.training import checkpoint as ckpt
from doughflow.training.control import await_verdict, publish_epoch
from doughflow.training.early_stopping import judge_epoch
from doughflow.training.engine import (
    AUTOCAST,
    backward_step,
    build_engine,
    forward_loss,
    full_state_dict,
    resolved_ds_config,
    write_monitor_events,
)
from doughflow.training.inference import make_model
from doughflow.training.job import TrainJob, TrainResult, resume_fingerprint, write_result
from doughflow.training.losses import LossLog, nan_message, problem_loss
from doughflow.training.micro_batch import settle_batch
from doughflow.training.normalize import Normalizer
from doughflow.training.process import ProcessContext, set_up_process
from doughflow.training.progress import write_progress
from doughflow.training.recipe import Recipe, training_recipe
from doughflow.training.schedule import StepPlan, checkpoint_due, lr_factor, plan_steps, settled_micro_batch
from doughflow.training.streaming import ParquetStream, make_loader
from doughflow.training.validation import validate

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # the folder under out_dir


class DataExhaustedError(RuntimeError):
    """A rank's stream ended before the planned number of steps (rows were skipped as bad)."""


@dataclass
class Run:
    """What the phases of one run share: the job, this process, the engine and the loop's state."""

    job: TrainJob
    process: ProcessContext
    train_stream: ParquetStream
    plan: StepPlan
    engine: Any  # deepspeed.DeepSpeedEngine
    scheduler: torch.optim.lr_scheduler.LambdaLR
    state: ckpt.LoopState
    ds_config_path: Path
    recipe: Recipe
    val_stream: ParquetStream = field(init=False)
    normalize: Normalizer = field(init=False)
    losses: LossLog = field(init=False)
    resumed_from: tuple[int, int] = field(init=False)  # (epoch, global step)
    seen: int = 0  # images trained on by every rank together
    bad_rows: dict[int, int] = field(default_factory=dict)  # per loader worker, as its stream counted them
    epochs_run: int = 0
    last_report: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        cfg = self.job.cfg
        self.resumed_from = (self.state.epoch, self.engine.global_steps)
        self.val_stream = ParquetStream(
            self.job.val_shards,
            self.job.columns,
            self.job.preprocessing,
            batch_size=max(64, settled_micro_batch(cfg)),
            loader=cfg.loader,
            shuffle=False,
            augment_cfg=None,
            drop_remainder=False,
        )
        self.normalize = Normalizer(self.job.preprocessing, self.process.device)
        # Read each loss as it comes, except on GPUs failing on NaN (see doughflow.training.losses).
        self.losses = LossLog(
            self.process.device.type == "cuda" and cfg.on_nan_loss == "fail", self.state.history["step_loss"]
        )

    @property
    def out_dir(self) -> Path:
        return Path(self.job.out_dir)

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / CHECKPOINTS

    def loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return problem_loss(self.job.problem, outputs, targets)


def run_training(job: TrainJob) -> TrainResult | None:
    """Train (or resume) the job; every rank calls this. Rank 0 writes the outputs and gets the result."""
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    process = set_up_process(job.cfg)
    job, recipe = settle_recipe(job, process)
    train_stream, plan = plan_run(job, process)
    engine, scheduler, ds_config_path = build_model_and_engine(job, process, plan, recipe)
    state = resume_state(job, process, engine)
    state.history["batch_size"] = recipe.global_batch_size
    state.history["recipe"] = recipe.as_dict()
    state.history.setdefault("step_lr", [])  # the learning rate of every optimizer update
    state.history["num_threads"] = torch.get_num_threads()  # CPU weights repeat only at the same count
    run = Run(job, process, train_stream, plan, engine, scheduler, state, ds_config_path, recipe)
    started = time.perf_counter()
    for epoch in range(state.epoch, job.cfg.epochs):
        if state.stopped_early:
            break
        record = train_epoch(run, epoch)
        end_epoch(run, epoch, record)
        run.epochs_run += 1
    return write_outputs(run, time.perf_counter() - started)


def settle_recipe(job: TrainJob, process: ProcessContext) -> tuple[TrainJob, Recipe]:
    """The job with its micro-batch and accumulation settled, and the recipe it trains with (logged)."""
    job, choice = settle_batch(
        job,
        process,
        lambda micro: [training_stream(job, process, micro).steps_per_epoch(e) for e in range(job.cfg.epochs)],
    )
    recipe = training_recipe(
        job.cfg, process.world_size, process.device.type, {"method": choice.method, **choice.detail}
    )
    if process.is_main:
        log.info("training recipe: %s", recipe.describe())
    return job, recipe


def training_stream(job: TrainJob, process: ProcessContext, micro_batch: int) -> ParquetStream:
    """This rank's stream of training micro-batches."""
    cfg = job.cfg
    return ParquetStream(
        job.train_shards,
        job.columns,
        job.preprocessing,
        batch_size=micro_batch,
        loader=cfg.loader,
        seed=cfg.seed,
        shuffle=True,
        augment_cfg=cfg.augment,
        rank=process.rank,
        world_size=process.world_size,
        drop_remainder=True,
    )


def plan_run(job: TrainJob, process: ProcessContext) -> tuple[ParquetStream, StepPlan]:
    """This rank's training stream and the steps it will train in every epoch."""
    cfg = job.cfg
    stream = training_stream(job, process, settled_micro_batch(cfg))
    plan = plan_steps(
        [stream.steps_per_epoch(e) for e in range(cfg.epochs)],
        cfg,
        process.world_size,
        sum(s.rows for s in job.train_shards),
    )
    return stream, plan


def build_model_and_engine(
    job: TrainJob, process: ProcessContext, plan: StepPlan, recipe: Recipe
) -> tuple[Any, torch.optim.lr_scheduler.LambdaLR, Path]:
    """Model, AdamW at the recipe's learning rate, LR schedule and the DeepSpeed engine around them;
    rank 0 records the resolved config."""
    cfg, device = job.cfg, process.device
    model = make_model(cfg, job.num_classes, job.problem).to(device)
    if device.type == "cuda":
        # Module.to takes memory_format at run time; its typed overloads leave it out
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.effective_learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_factor(cfg, plan.total_updates, recipe.global_batch_size)
    )
    engine = build_engine(model, optimizer, scheduler, cfg, device, process.world_size, job.out_dir)
    ds_config_path = Path(job.out_dir) / "ds_config.json"
    if process.is_main:
        config = resolved_ds_config(cfg, device, process.world_size, plan.total_updates, recipe, job.out_dir)
        ds_config_path.write_text(json.dumps(config, indent=2))
    return engine, scheduler, ds_config_path


def resume_state(job: TrainJob, process: ProcessContext, engine: Any) -> ckpt.LoopState:
    """The loop's state from the latest checkpoint (engine and RNGs restored too), or a fresh one."""
    checkpoint_dir = Path(job.out_dir) / CHECKPOINTS
    expected = resume_fingerprint(job, process.world_size)
    tag = ckpt.latest_tag(checkpoint_dir)
    if not tag:
        return ckpt.LoopState(fingerprint=expected)
    verify_before_load(checkpoint_dir, tag, process)
    load_path, _ = engine.load_checkpoint(str(checkpoint_dir), tag=tag)
    if load_path is None:
        raise ckpt.CheckpointMismatchError(f"checkpoint {checkpoint_dir / tag} could not be loaded")
    state = ckpt.LoopState.load(checkpoint_dir, tag)
    if state.fingerprint != expected:
        raise ckpt.CheckpointMismatchError(
            f"checkpoint {checkpoint_dir / tag} was written for another config, data or world size; "
            f"delete {checkpoint_dir} to start over, or use a new run id"
        )
    ckpt.load_rng(checkpoint_dir, tag, process.rank)
    log.info("resumed from %s: epoch %d, %d batches into it", tag, state.epoch + 1, state.batches_done)
    return state


def verify_before_load(checkpoint_dir: Path, tag: str, process: ProcessContext) -> None:
    """Rank 0 checks the tag's files against the digests recorded at save time (one reader of the shared
    checkpoint folder, not one per rank); every rank raises when it fails, before DeepSpeed unpickles."""
    failure = ""
    if process.is_main:
        try:
            ckpt.verify_digests(checkpoint_dir, tag)
        except ckpt.CheckpointIntegrityError as error:
            failure = str(error)
    if process.world_size > 1:
        verdict = [failure]
        torch.distributed.broadcast_object_list(verdict, src=0)
        failure = verdict[0]
    if failure:
        raise ckpt.CheckpointIntegrityError(failure)


def save_checkpoint(run: Run, tag: str) -> None:
    """Every rank saves its part; rank 0 then records the files' digests, points ``latest`` at the tag
    and prunes old ones."""
    ckpt.save_rng(run.checkpoint_dir, tag, run.process.rank)
    if run.process.is_main:
        run.state.save(run.checkpoint_dir, tag)
    # Returns after a barrier: every rank's files of this tag are written.
    run.engine.save_checkpoint(str(run.checkpoint_dir), tag=tag, save_latest=False)
    if run.process.is_main:
        ckpt.record_digests(run.checkpoint_dir, tag)
        ckpt.mark_latest(run.checkpoint_dir, tag)
        ckpt.prune(run.checkpoint_dir, run.job.cfg.keep_checkpoints)


class EpochClock:
    """Images and time of one epoch, and its steady-state rate, which leaves out the first steps
    (worker start-up, shuffle-buffer fill, kernel autotuning)."""

    def __init__(self, first_step: int, steps: int) -> None:
        self.start = time.perf_counter()
        self.first_step, self.steps = first_step, steps
        self.warm_steps = min(10, max(1, (steps - first_step) // 5))
        self.seen = 0
        self.steady_start: float | None = None
        self.steady_seen = 0
        self.end = self.start

    def step_done(self, step: int) -> None:
        if step + 1 == self.first_step + self.warm_steps:
            self.steady_start, self.steady_seen = time.perf_counter(), self.seen

    def rate(self) -> float:
        return self.seen / max(1e-9, time.perf_counter() - self.start)

    def stop(self) -> None:
        self.end = time.perf_counter()

    def record(self, epoch: int, lr: float, global_step: int, epoch_losses: list[float]) -> dict:
        """The epoch's history record before validation."""
        seconds = time.perf_counter() - self.start
        record = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan"),
            "lr": lr,
            "seconds": seconds,
            "img_s": self.seen / seconds if seconds > 0 else 0.0,
            "global_step": global_step,
        }
        if self.steady_start is not None and self.seen > self.steady_seen:
            record["steady_img_s"] = (self.seen - self.steady_seen) / max(1e-9, self.end - self.steady_start)
            record["steady_steps"] = self.steps - self.first_step - self.warm_steps
        return record


def train_epoch(run: Run, epoch: int) -> dict:
    """Train the rest of ``epoch`` (all of it unless resumed inside it); its record, before validation."""
    cfg, state, process = run.job.cfg, run.state, run.process
    steps = run.plan.epoch_steps[epoch]
    if state.epoch != epoch or state.batches_done == 0:
        state.epoch, state.batches_done, state.epoch_start_index = epoch, 0, len(state.history["step_loss"])
    first_step = state.batches_done
    run.train_stream.set_epoch(epoch, skip_batches=first_step)
    run.engine.train()
    clock = EpochClock(first_step, steps)
    bar = tqdm(
        total=steps,
        initial=first_step,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        mininterval=2.0,
        disable=None if process.is_main else True,
    )
    batches = iter(make_loader(run.train_stream, cfg.loader, process.device))
    for step in range(first_step, steps):
        batch = next_batch(run, batches, epoch, step, steps)
        if not train_step(run, batch, epoch, step):
            continue
        clock.seen += len(batch["ids"]) * process.world_size
        run.seen += len(batch["ids"]) * process.world_size
        if (step + 1) % cfg.log_every_steps == 0:
            report_progress(run, bar, clock, epoch, step)
        bar.update(1)
        clock.step_done(step)
        at_boundary = (step + 1) % cfg.gradient_accumulation_steps == 0
        if (
            at_boundary
            and step + 1 < steps
            and checkpoint_due(cfg, run.engine.global_steps, run.recipe.global_batch_size)
        ):
            run.losses.flush()
            save_checkpoint(run, f"step-{run.engine.global_steps:08d}")
    run.losses.flush()  # before the clock stops: on GPUs this waits for the last step to finish
    clock.stop()
    del batches  # stops the loader workers (not part of the steady-state rate)
    bar.close()
    if process.is_main:
        write_progress(
            run.job.out_dir,
            epoch=epoch,
            epochs=cfg.epochs,
            step=steps,
            steps=steps,
            loss=None,
            images_per_second=clock.seen / max(1e-9, clock.end - clock.start),
        )
    return clock.record(
        epoch,
        float(run.scheduler.get_last_lr()[0]),
        run.engine.global_steps,
        state.history["step_loss"][state.epoch_start_index :],
    )


def next_batch(run: Run, batches: Iterator[dict], epoch: int, step: int, steps: int) -> dict:
    """The loader's next batch; a stream that ends before the plan does is an error naming the rank and step."""
    try:
        return next(batches)
    except StopIteration:
        raise DataExhaustedError(
            f"rank {run.process.rank} ran out of training data at epoch {epoch + 1} step {step} of {steps} after "
            f"skipping {sum(run.bad_rows.values())} bad rows; fix or drop the bad rows (see warnings above)"
        ) from None


def train_step(run: Run, batch: dict, epoch: int, step: int) -> bool:
    """Forward, the non-finite-loss policy, backward and DeepSpeed's step; False when the batch was skipped."""
    cfg, engine, process, state = run.job.cfg, run.engine, run.process, run.state
    run.bad_rows[batch["worker"]] = batch["bad_rows"]
    loss = forward_loss(engine, batch["images"], batch["targets"], run.normalize, process.device, run.loss_fn)
    where = f"epoch {epoch + 1} step {step} (global step {engine.global_steps}, rank {process.rank})"
    if cfg.on_nan_loss == "skip":
        bad = torch.tensor([0.0 if bool(torch.isfinite(loss)) else 1.0])
        if process.world_size > 1:
            torch.distributed.all_reduce(bad)  # every rank must skip the same step
        if bad.item() > 0:
            state.skipped_steps += 1
            log.warning("skipping non-finite loss at %s (%d skipped)", where, state.skipped_steps)
            if state.skipped_steps > cfg.max_skipped_steps:
                raise FloatingPointError(
                    nan_message(float(loss.detach()), where, batch["ids"])
                    + f"; more than train.max_skipped_steps={cfg.max_skipped_steps}"
                )
            state.batches_done = step + 1
            return False
    elif not run.losses.lazy and not bool(torch.isfinite(loss)):
        raise FloatingPointError(nan_message(float(loss.detach()), where, batch["ids"]))
    if engine.is_gradient_accumulation_boundary():
        state.history["step_lr"].append(engine.get_lr()[0])  # the rate this update is made with
    backward_step(engine, loss)
    run.losses.add(loss, where, batch["ids"])
    state.batches_done = step + 1
    return True


def report_progress(run: Run, bar: tqdm, clock: EpochClock, epoch: int, step: int) -> None:
    """Every log interval: the latest loss and rate on the bar, in progress.json, and (no terminal) in the log."""
    cfg = run.job.cfg
    value = run.losses.flush()
    rate = clock.rate()
    shown = f"{value:.4f}" if value is not None else "-"
    bar.set_postfix(loss=shown, img_s=f"{rate:.0f}")
    if not run.process.is_main:
        return
    write_progress(
        run.job.out_dir,
        epoch=epoch,
        epochs=cfg.epochs,
        step=step + 1,
        steps=clock.steps,
        loss=value,
        images_per_second=rate,
    )
    if value is not None:
        samples = run.engine.global_samples
        write_monitor_events(
            run.engine,
            [("Train/Samples/train_loss", value, samples), ("Train/Samples/images_per_second", rate, samples)],
        )
    if bar.disable and time.perf_counter() - run.last_report > 30:
        # No terminal (Prefect, CI): a log line stands in for the progress bar.
        run.last_report = time.perf_counter()
        log.info("epoch %d/%d step %d/%d loss %s %.0f img/s", epoch + 1, cfg.epochs, step + 1, clock.steps, shown, rate)


def end_epoch(run: Run, epoch: int, record: dict) -> None:
    """Rank 0 judges the epoch; every rank then learns the verdict, keeps the best weights and checkpoints."""
    process, state = run.process, run.state
    flags = torch.zeros(2)  # [improved, stop]
    if process.is_main:
        improved, stop = validate_and_judge(run, epoch, record)
        flags[0], flags[1] = float(improved), float(stop)
    if process.world_size > 1:
        torch.distributed.broadcast(flags, src=0)
    if flags[0] > 0:
        weights = full_state_dict(run.engine, run.job.cfg.zero_stage)
        if process.is_main:
            ckpt.atomic_torch_save(weights, run.out_dir / "best_model.pt")
    state.stopped_early = bool(flags[1] > 0)
    state.epoch, state.batches_done, state.epoch_start_index = epoch + 1, 0, len(state.history["step_loss"])
    save_checkpoint(run, f"step-{run.engine.global_steps:08d}")


def validate_and_judge(run: Run, epoch: int, record: dict) -> tuple[bool, bool]:
    """Rank 0: validate, apply early stopping, and let a tuner stop the run at this boundary too."""
    job, cfg = run.job, run.job.cfg
    if len(job.val_shards):
        device = run.process.device
        metrics = validate(
            run.engine.module,
            make_loader(run.val_stream, cfg.loader, device),
            run.normalize,
            device,
            AUTOCAST[cfg.precision],
            job.problem,
        )
        record.update({f"val_{k}": v for k, v in metrics.items()})
    improved, stop = judge_epoch(record, run.state, cfg.early_stopping, cfg.epochs)
    if job.control_dir:  # a tuner judges every epoch; its stop lands at this boundary, like early stopping
        publish_epoch(job.control_dir, record)
        if epoch + 1 < cfg.epochs and await_verdict(job.control_dir, epoch + 1):
            stop = True
            log.info("stopped after epoch %d: the tuner pruned this run", epoch + 1)
    run.state.history["epoch"].append(record)
    log.info("epoch %d: %s", epoch + 1, json.dumps(record))
    samples = run.engine.global_samples
    write_monitor_events(
        run.engine,
        [
            ("Train/Samples/epoch", record["epoch"], samples),
            ("Train/Samples/epoch_train_loss", record["train_loss"], samples),
            *[
                (f"Val/Samples/{key[4:]}", value, samples)
                for key, value in record.items()
                if key.startswith("val_") and isinstance(value, (int, float))
            ],
        ],
    )
    return improved, stop


def write_outputs(run: Run, seconds: float) -> TrainResult | None:
    """Gather the final weights (every rank); rank 0 writes model.pt (the best epoch's), last_model.pt,
    history.json and result.json, and returns the result."""
    final_weights = full_state_dict(run.engine, run.job.cfg.zero_stage)
    if not run.process.is_main:
        return None
    assert final_weights is not None, "rank 0 always receives the whole weights"
    out_dir, state, history = run.out_dir, run.state, run.state.history
    best_path = out_dir / "best_model.pt"
    weights = torch.load(best_path, map_location="cpu", weights_only=True) if best_path.exists() else final_weights
    model_path = out_dir / "model.pt"
    ckpt.atomic_torch_save(weights, model_path)
    ckpt.atomic_torch_save(final_weights, out_dir / "last_model.pt")
    history_path = out_dir / "history.json"
    history_path.write_text(json.dumps(history))
    step_losses = history["step_loss"]
    k = max(1, min(10, len(step_losses) // 5))
    result = TrainResult(
        model_path=str(model_path),
        history_path=str(history_path),
        ds_config_path=str(run.ds_config_path),
        epochs_run=run.epochs_run,
        resumed_from_epoch=run.resumed_from[0],
        first_loss=float(np.mean(step_losses[:k])) if step_losses else float("nan"),
        final_loss=float(np.mean(step_losses[-k:])) if step_losses else float("nan"),
        best_epoch=state.best_epoch,
        seconds=seconds,
        images_per_second=run.seen / seconds if seconds > 0 else 0.0,
        history=history,
        resumed_from_step=run.resumed_from[1],
        global_steps=run.engine.global_steps,
        world_size=run.process.world_size,
        stopped_early=state.stopped_early,
        skipped_steps=state.skipped_steps,
        bad_rows=sum(run.bad_rows.values()),
        weights_sha256=ckpt.state_dict_hash(final_weights),
        recipe=run.recipe.as_dict(),
    )
    if result.bad_rows:
        log.warning("%d bad rows were skipped (train.loader.on_bad_row=skip)", result.bad_rows)
    write_result(result, out_dir)
    return result
