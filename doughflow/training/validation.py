"""Validation metrics at the end of an epoch, streamed: sums per batch, so the val split never sits in memory.

The sums stay on the device and are read once at the end: a read per batch would make a GPU wait for
its host between batches. Counts report the mean absolute error per cell and the share of cells whose
rounded, non-negative prediction is exact; classification reports cross-entropy and accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


@torch.no_grad()
def validate(
    model: torch.nn.Module,
    loader: Iterable[dict],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    problem: str = "count",
) -> dict[str, float]:
    """Metrics over every batch of ``loader`` (``images`` uint8 NHWC, ``targets``); {} when it is empty.

    The model is left in train mode, as the loop needs it next.
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
