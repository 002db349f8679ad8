"""Settle the micro-batch and gradient accumulation a run trains with, before anything else is built.

``micro_batch_size: auto`` asks for the largest micro-batch that fits, as Lightning's batch-size finder
and DeepSpeed's autotuner find it, but without a separate tuning run: each rank finds it on its own
device, the ranks take the smallest, and ``global_batch_size`` (when set) then fixes the accumulation.

- GPU: probed with real forward+backward steps (:class:`doughflow.training.footprint.StepProbe`),
  from ``micro_batch_search.start`` doubling while a step fits, then bisected between the last that fit
  and the first that did not; a step that runs out of memory backs off. A step fits when its peak
  plus AdamW's state stays within (1 - headroom) of the memory free to this process when probing
  began. Doubling then bisecting finds the exact largest size in about 2 log2(size) steps.
- CPU: no probing, since a CPU does not run out of memory but swaps. The bytes per sample and the
  fixed bytes come from two measured steps (at 4 and 8 samples, exact because a step's tensors grow
  linearly with the batch), and the micro-batch is what fits in (1 - headroom) of
  ``memory_budget_gb``. The budget is per process, like a GPU's memory; left empty it is the memory
  available at start divided among this host's training processes.

The choice is capped so that every epoch still gives each rank a whole update, and by
``micro_batch_search.limit``. Probing runs on a model of its own under a forked RNG, so the weights
the run starts from are those of the same seed without probing. The choice, its measurements and
trials are logged and written to ``<out_dir>/micro_batch.json``; a resumed run reuses it, as a second
probe could pick another size and the checkpoint belongs to the first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from doughflow.config import TrainConfig
from doughflow.training import checkpoint as ckpt
from doughflow.training.footprint import StepProbe
from doughflow.training.inference import make_model
from doughflow.training.job import TrainJob
from doughflow.training.process import ProcessContext
from doughflow.training.schedule import accumulation_for, split_global_batch

log = logging.getLogger(__name__)

CHOICE_FILE = "micro_batch.json"
GB = 10**9


@dataclass(frozen=True)
class MicroBatchChoice:
    """The micro-batch and accumulation a run trains with, and how they were arrived at."""

    micro_batch_size: int
    gradient_accumulation_steps: int
    method: str  # configured | global batch | cpu memory budget | gpu probe (+ ", reused" on resume)
    detail: dict = field(default_factory=dict)

    def describe(self) -> str:
        text = f"micro batch {self.micro_batch_size} x accumulation {self.gradient_accumulation_steps} ({self.method}"
        if "memory_cap" in self.detail:
            text += f": {self.detail['memory_cap']} fit in memory"
            if self.detail.get("data_cap", self.detail["memory_cap"]) < self.detail["memory_cap"]:
                text += f", {self.detail['data_cap']} keep a whole update per epoch"
        return text + ")"


def largest_fitting(fits: Callable[[int], bool], start: int, limit: int) -> int:
    """The largest size in [1, limit] for which ``fits`` holds (0 if none), assuming it holds up to some
    size and never above: double from ``start`` while it fits (halve while it does not), then bisect."""
    start = max(1, min(start, limit))
    if fits(start):
        good, bad = start, None
        while bad is None and good < limit:
            trial = min(2 * good, limit)
            good, bad = (trial, None) if fits(trial) else (good, trial)
        if bad is None:
            return good
    else:
        good, bad = 0, start
        while good == 0 and bad > 1:
            trial = bad // 2
            good, bad = (trial, bad) if fits(trial) else (0, trial)
        if good == 0:
            return 0
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if fits(middle) else (good, middle)
    return good


def probe_largest(probe: StepProbe, allowed_bytes: float, start: int, limit: int) -> tuple[int, list[dict]]:
    """The largest micro-batch whose measured step, plus the state outside it, stays within
    ``allowed_bytes``; every trial is recorded (an out-of-memory step counts as not fitting)."""
    trials: list[dict] = []
    static = probe.static_bytes()

    def fits(size: int) -> bool:
        try:
            peak = probe.peak_bytes(size)
        except torch.OutOfMemoryError:
            trials.append({"micro_batch": size, "peak_bytes": None, "outcome": "out of memory"})
            return False
        ok = peak + static <= allowed_bytes
        trials.append({"micro_batch": size, "peak_bytes": peak + static, "outcome": "fits" if ok else "over headroom"})
        return ok

    return largest_fitting(fits, start, limit), trials


def cpu_budget_bytes(cfg: TrainConfig) -> tuple[float, str]:
    """The CPU memory a training process may use, and where that number came from."""
    if cfg.memory_budget_gb is not None:
        return cfg.memory_budget_gb * GB, "train.memory_budget_gb"
    import psutil

    processes = cfg.launcher.num_processes
    return psutil.virtual_memory().available / processes, f"available memory / {processes} process(es) on this host"


def memory_cap(job: TrainJob, process: ProcessContext) -> dict:
    """This rank's largest micro-batch by memory, with the measurements behind it."""
    cfg, search = job.cfg, job.cfg.micro_batch_search
    devices = [process.device] if process.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        model = make_model(cfg, job.num_classes, job.problem).to(process.device)
        probe = StepProbe(model, job.preprocessing, job.num_classes, job.problem, process.device, cfg.precision)
        if process.device.type == "cuda":
            # as the loop trains it; Module.to takes memory_format at run time, its typed overloads leave it out
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            free, _ = torch.cuda.mem_get_info(process.device)
            available = free + torch.cuda.memory_reserved(process.device)
            allowed = (1 - search.headroom) * available
            cap, trials = probe_largest(probe, allowed, search.start, search.limit)
            detail = {"method": "gpu probe", "device_bytes": available, "allowed_bytes": allowed, "trials": trials}
        else:
            budget, source = cpu_budget_bytes(cfg)
            allowed = (1 - search.headroom) * budget
            footprint = probe.footprint()
            cap = min(search.limit, footprint.largest_batch(allowed))
            detail = {
                "method": "cpu memory budget",
                "budget_bytes": budget,
                "budget_from": source,
                "allowed_bytes": allowed,
                **asdict(footprint),
            }
        del model, probe
    if process.device.type == "cuda":
        torch.cuda.empty_cache()
    detail.update(memory_cap=cap, headroom=search.headroom)
    return detail


def agree_on_cap(cap: int, process: ProcessContext) -> int:
    """The smallest cap over all ranks: every rank must train the same micro-batch."""
    if process.world_size == 1:
        return cap
    value = torch.tensor([cap], dtype=torch.int64, device=process.device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
    return int(value.item())


def fit_to_data(
    cfg: TrainConfig, world_size: int, cap: int, epoch_steps: Callable[[int], list[int]]
) -> tuple[int, int, int]:
    """(micro batch, accumulation, data cap): the largest micro-batch up to ``cap`` that keeps
    ``global_batch_size`` (when set) and leaves every epoch a whole update on every rank."""

    def split(limit: int) -> tuple[int, int]:
        if cfg.global_batch_size is not None:
            return split_global_batch(cfg.global_batch_size, world_size, limit)
        return limit, cfg.gradient_accumulation_steps

    def trains(limit: int) -> bool:
        micro, accumulation = split(limit)
        return min(epoch_steps(micro)) >= accumulation

    data_cap = cap
    if not trains(
        cap
    ):  # too little data per rank for this size: the largest that trains (plan_steps names the fix if none)
        data_cap = max(1, largest_fitting(trains, 1, cap - 1)) if cap > 1 else 1
    return (*split(data_cap), data_cap)


def settle_batch(
    job: TrainJob, process: ProcessContext, epoch_steps: Callable[[int], list[int]]
) -> tuple[TrainJob, MicroBatchChoice]:
    """The job with a whole-number micro-batch and accumulation, and how they were chosen.

    ``epoch_steps(micro)`` gives the micro-batches every rank can train in each epoch at that size.
    """
    cfg = job.cfg
    if cfg.micro_batch_size != "auto":
        if cfg.global_batch_size is None:
            choice = MicroBatchChoice(cfg.micro_batch_size, cfg.gradient_accumulation_steps, "configured")
        else:
            accumulation = accumulation_for(cfg.global_batch_size, cfg.micro_batch_size, process.world_size)
            choice = MicroBatchChoice(
                cfg.micro_batch_size, accumulation, "global batch", {"global_batch_size": cfg.global_batch_size}
            )
    else:
        choice = reused_choice(job) or auto_choice(job, process, epoch_steps)
    settled = cfg.model_copy(
        update={
            "micro_batch_size": choice.micro_batch_size,
            "gradient_accumulation_steps": choice.gradient_accumulation_steps,
        }
    )
    return replace(job, cfg=settled), choice


def auto_choice(job: TrainJob, process: ProcessContext, epoch_steps: Callable[[int], list[int]]) -> MicroBatchChoice:
    detail = memory_cap(job, process)
    cap = agree_on_cap(detail["memory_cap"], process)
    if cap < 1:
        where = "train.memory_budget_gb" if process.device.type == "cpu" else "the GPU's free memory"
        raise ValueError(
            f"train.micro_batch_size auto: not one sample fits in {where} less "
            f"train.micro_batch_search.headroom {job.cfg.micro_batch_search.headroom}: "
            f"{json.dumps(detail, default=str)}"
        )
    detail["agreed_cap"] = cap
    micro, accumulation, data_cap = fit_to_data(job.cfg, process.world_size, cap, epoch_steps)
    detail["data_cap"] = data_cap
    choice = MicroBatchChoice(micro, accumulation, detail.pop("method"), detail)
    log.info("train.micro_batch_size auto: %s", choice.describe())
    if process.is_main:
        Path(job.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(job.out_dir) / CHOICE_FILE).write_text(json.dumps(asdict(choice), indent=1))
    return choice


def reused_choice(job: TrainJob) -> MicroBatchChoice | None:
    """The choice recorded by the run a checkpoint belongs to (a resume must train the same sizes)."""
    path = Path(job.out_dir) / CHOICE_FILE
    if not path.exists() or ckpt.latest_tag(Path(job.out_dir) / "checkpoints") is None:
        return None
    raw = json.loads(path.read_text())
    choice = MicroBatchChoice(**{**raw, "method": raw["method"].removesuffix(", reused") + ", reused"})
    log.info("train.micro_batch_size auto: %s, as recorded in %s", choice.describe(), path)
    return choice
