"""A user model registered from its own module (train.model.import_module), which always returns NaN:
it exercises both the registration path and the NaN-loss handling."""

from __future__ import annotations

import torch
from torch import nn

from doughflow.training.models import register_model


class NanCounter(nn.Module):
    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, num_classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(images).sum(dim=(2, 3)) * float("nan")


@register_model("test_nan_counter")
def nan_counter(num_classes: int, width: int = 8) -> nn.Module:
    return NanCounter(num_classes, width)
