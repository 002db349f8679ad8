"""What one training step costs in memory, measured by running one: forward, loss and backward on a
batch of the training shape, in the run's precision and memory layout, on the device it will train on.

On a GPU the caching allocator's peak is the measure (``torch.cuda.max_memory_reserved``: what the
process really holds, fragmentation included), and running out is the allocator's own
``torch.OutOfMemoryError``. A CPU has no such counter, so :class:`TensorMeter` counts the bytes of every
tensor storage torch creates while the step runs and sums those still alive: the peak is the step's
tensor memory. The process's resident size is no measure of it. Measured here (density_cnn width 24,
64 px, fp32, one process): the tensor peak was 30.0, 60.0, 120.0, 240.0 and 480.0 MiB at 16, 32, 64,
128 and 256 samples, exactly 1.875 MiB a sample, while the growth of the peak resident size over the
same steps, in that order, read 141.9 (the first step also pays one-time set-up), 55.8, 75.1, 200.2
and 348.0 MiB, and 0.0 MiB when a batch of 16 ran again: glibc keeps freed memory, so it depends on
what ran before. The count is deterministic, linear in the batch (exactly, from 2 samples up) and was
above the growth of every step but the first, so a budget built on it holds; the budget covers the
model's tensors, not the interpreter, its libraries or the loader workers. With a ``cap`` the
meter raises ``torch.OutOfMemoryError`` as soon as the live bytes pass it, as an allocator on a device
of that size would: a real CPU step that runs out like a GPU step, which is how the GPU probe is
tested on machines without one.

The weights and the optimizer's state exist outside the step: :meth:`StepProbe.static_bytes` adds them
(AdamW keeps two moments per parameter; on a GPU the weights are already in the allocator's count).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from doughflow.preprocessing import Preprocessing
from doughflow.training.engine import AUTOCAST
from doughflow.training.losses import problem_loss
from doughflow.training.normalize import Normalizer

ADAMW_STATES = 2  # exp_avg and exp_avg_sq, each the size of the parameters


class TensorMeter(TorchDispatchMode):
    """Live and peak bytes of the tensor storages torch creates while active (views and in-place
    results share a storage and count once); past ``cap`` bytes, ``torch.OutOfMemoryError``."""

    def __init__(self, cap: int | None = None) -> None:
        super().__init__()
        self.cap = cap
        self.live = 0
        self.peak = 0
        self._alive: dict[int, weakref.finalize] = {}

    def _freed(self, key: int, size: int) -> None:
        self.live -= size
        self._alive.pop(key, None)

    def __torch_dispatch__(
        self,
        func: Callable[..., Any],
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if size == 0 or key in self._alive:
                continue
            self.live += size
            self.peak = max(self.peak, self.live)
            self._alive[key] = weakref.finalize(storage, self._freed, key, size)
            if self.cap is not None and self.live > self.cap:
                raise torch.OutOfMemoryError(f"step needs more than the {self.cap} bytes of this memory cap")
        return out


def parameter_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def synthetic_batch(
    size: int, image_size: int, num_classes: int, problem: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC images and float targets of the loader's shapes (contents do not change the memory)."""
    images = torch.zeros((size, image_size, image_size, 3), dtype=torch.uint8, device=device)
    targets = torch.zeros((size, num_classes), dtype=torch.float32, device=device)
    if problem == "classification":
        targets[:, 0] = 1.0
    return images, targets


@dataclass(frozen=True)
class Footprint:
    """Bytes of a step at any micro-batch: ``static + fixed + per_sample x batch`` (CPU measurement)."""

    static_bytes: int  # weights and optimizer state
    fixed_bytes: int  # the step's tensors that do not grow with the batch (gradients, ...)
    per_sample_bytes: float

    def bytes_for(self, batch: int) -> float:
        return self.static_bytes + self.fixed_bytes + self.per_sample_bytes * batch

    def largest_batch(self, allowed_bytes: float) -> int:
        """The largest micro-batch within ``allowed_bytes`` (0 when not even one sample fits)."""
        room = allowed_bytes - self.static_bytes - self.fixed_bytes
        return max(0, int(room // self.per_sample_bytes)) if self.per_sample_bytes > 0 else 0


class StepProbe:
    """One training step of ``model`` at any micro-batch, and its peak memory in bytes."""

    def __init__(
        self,
        model: torch.nn.Module,
        preprocessing: Preprocessing,
        num_classes: int,
        problem: str,
        device: torch.device,
        precision: str,
        cap: int | None = None,
    ) -> None:
        self.model = model.train()
        self.preprocessing, self.num_classes, self.problem = preprocessing, num_classes, problem
        self.device, self.cap = device, cap
        self.autocast = AUTOCAST[precision]
        self.normalize = Normalizer(preprocessing, device)

    def static_bytes(self) -> int:
        """What the step's measure leaves out: AdamW's moments, and on a CPU the weights too."""
        weights = parameter_bytes(self.model)
        return weights * ADAMW_STATES + (0 if self.device.type == "cuda" else weights)

    def _step(self, size: int) -> None:
        images, targets = synthetic_batch(
            size, self.preprocessing.image_size, self.num_classes, self.problem, self.device
        )
        self.model.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
            outputs = self.model(self.normalize(images))
        problem_loss(self.problem, outputs.float(), targets).backward()

    def peak_bytes(self, size: int) -> int:
        """Peak bytes of one step at micro-batch ``size``; ``torch.OutOfMemoryError`` when it does not fit."""
        try:
            if self.device.type == "cuda":
                return self._cuda_peak(size)
            with TensorMeter(self.cap) as meter:
                self._step(size)
            return meter.peak
        finally:
            self.model.zero_grad(set_to_none=True)

    def _cuda_peak(self, size: int) -> int:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()  # a failed larger trial must not count against this one
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            self._step(size)
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_reserved(self.device)
        except torch.OutOfMemoryError:
            self.model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            raise

    def footprint(self, sizes: tuple[int, int] = (4, 8)) -> Footprint:
        """Two measured steps give the bytes per sample and the rest (the step's tensors are linear in the batch)."""
        small, large = sizes
        low, high = self.peak_bytes(small), self.peak_bytes(large)
        per_sample = (high - low) / (large - small)
        return Footprint(self.static_bytes(), max(0, round(low - per_sample * small)), per_sample)
