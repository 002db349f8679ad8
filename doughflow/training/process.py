"""Set-up of one training process, alone or one rank of a launched job: rendezvous, device, determinism.

torch.distributed (and so DeepSpeed) needs a rendezvous even for one process; a process training
alone joins one on loopback with a port of its own. Ranks started by a launcher find theirs in the
environment it set.

Without peers we avoid DeepSpeed's JIT op builds, which cost minutes on a cold machine (about 110 s
for the shm comm op here) and buy nothing: the shm op only speeds up CPU inference all-reduce (gloo
does the training collectives), so it is marked incompatible, through a private switch (hence the
pinned DeepSpeed minor version). The optimizer is a plain torch one for the same reason.

On a CPU the kernels are deterministic for a fixed thread count, so the same seed and config give
bit-identical weights; GPUs need cuDNN and cuBLAS told so. The thread count is therefore always set,
never inherited: ``train.num_threads: 0`` means this process's share of the cores it may run on, not
whatever ``torch.get_num_threads()`` the process happens to have. Inheriting it made one config train
differently by test order: a pytest worker that had trained a ``num_threads: 1`` job earlier trained
the flow tests' ``num_threads: 0`` job with 1 thread, a fresh worker with 2, and a 400-image, 2-epoch
job gave different weights at 1 and 2 threads (CPU float reductions are split by thread).
"""

from __future__ import annotations

import logging
import os
import random
import socket
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch

from doughflow.config import TrainConfig
from doughflow.training.deepspeed_import import import_deepspeed


@dataclass(frozen=True)
class ProcessContext:
    """Where this process sits in the job: its rank, the number of ranks, and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 validates, talks to a tuner and writes the outputs."""
        return self.rank == 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
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
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))


def resolve_device(choice: str) -> torch.device:
    """``cuda``, ``cpu``, or ``auto`` (a GPU when torch sees one)."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, which taskset and container cpusets narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def training_threads(cfg: TrainConfig) -> int:
    """``train.num_threads``, or with 0 this process's share of the usable cores: every process a
    launcher starts on this host (torchrun's ``LOCAL_WORLD_SIZE``, DeepSpeed's ``LOCAL_SIZE``) gets an
    equal share, so ranks do not oversubscribe the cores."""
    if cfg.num_threads:
        return cfg.num_threads
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or "1"))
    return max(1, usable_cores() // local_processes)


def configure_determinism(cfg: TrainConfig, device: torch.device) -> None:
    """A definite CPU thread count (see the module docstring); GPUs need cuDNN/cuBLAS told so."""
    torch.set_num_threads(training_threads(cfg))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)


def quiet_deepspeed() -> None:
    """No JIT build of the shm comm op (see the module docstring), and only DeepSpeed's warnings in the log."""
    import_deepspeed()
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)


def init_distributed(device: torch.device, timeout_minutes: int) -> None:
    """Join the launched job's process group: NCCL between GPUs, gloo between CPU processes."""
    deepspeed = import_deepspeed()
    deepspeed.init_distributed(
        dist_backend="nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=timeout_minutes)
    )


def set_up_process(cfg: TrainConfig) -> ProcessContext:
    """Everything before the data and the model, in this order: rendezvous, device, determinism, seeds."""
    import_deepspeed()  # first, as before: whatever its import sets up precedes everything below

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        ensure_single_process_env()
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    configure_determinism(cfg, device)
    quiet_deepspeed()
    if world_size > 1:
        init_distributed(device, cfg.launcher.timeout_minutes)
    seed_everything(cfg.seed)
    return ProcessContext(rank, world_size, local_rank, device)
