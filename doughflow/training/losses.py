"""The training loss per problem, and a log of it that does not make a GPU wait at every step.

Reading a loss (``float(loss)``) waits for the GPU to finish the step. On GPUs with
``train.on_nan_loss=fail`` the log keeps the loss tensors and reads them all at once every
``train.log_every_steps``; a non-finite one still stops the run, naming its step and samples, only a
few steps later. On a CPU, or when skipping bad steps (every rank must agree on the skip at once),
each loss is read as it comes.
"""

from __future__ import annotations

import math

import torch


def problem_loss(problem: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE on counts; cross-entropy of logits against one-hot targets (class probabilities) for classification."""
    if problem == "classification":
        return torch.nn.functional.cross_entropy(outputs, targets)
    return torch.nn.functional.mse_loss(outputs, targets)


def nan_message(value: float, where: str, ids: list) -> str:
    """What stopped the run, where, on which samples (the first 8), and what to change."""
    shown = ", ".join(map(str, ids[:8])) + (" ..." if len(ids) > 8 else "")
    return (
        f"loss is {value} at {where} (batch sample ids: {shown}); stopping. Lower train.learning_rate, "
        f"check those rows, or set train.on_nan_loss=skip"
    )


class LossLog:
    """Per-step losses without a host sync per step on GPUs (fail policy): checked every log interval."""

    def __init__(self, lazy: bool, history: list[float]) -> None:
        self.lazy = lazy
        self.history = history
        self.pending: list[tuple[torch.Tensor, str, list]] = []

    def add(self, loss: torch.Tensor, where: str, ids: list) -> float | None:
        """Log one step's loss; its value now unless lazy."""
        if self.lazy:
            self.pending.append((loss.detach(), where, ids))
            return None
        value = float(loss.detach())
        self.history.append(value)
        return value

    def flush(self) -> float | None:
        """Read the pending losses in one go (FloatingPointError at the first non-finite); the latest loss."""
        if not self.pending:
            return self.history[-1] if self.history else None
        values = torch.stack([p[0] for p in self.pending]).float().cpu().tolist()
        for value, (_, where, ids) in zip(values, self.pending):
            if not math.isfinite(value):
                raise FloatingPointError(nan_message(value, where, ids))
        self.history.extend(values)
        self.pending = []
        return values[-1]
