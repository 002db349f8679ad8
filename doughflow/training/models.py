"""Counting models in plain torch, built by name from the config.

A counter should add up evidence over the image rather than average it, so the default model
predicts a non-negative density map per topping and sums it: a pizza with twice the olives gets
twice the olive mass, whatever the layout. That inductive bias is why it trains to exact counts on a
CPU in minutes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

ModelFactory = Callable[..., nn.Module]
MODEL_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator that makes a factory selectable as ``train.model.name`` in the config."""

    def decorate(factory: ModelFactory) -> ModelFactory:
        MODEL_REGISTRY[name] = factory
        return factory

    return decorate


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DensityCounter(nn.Module):
    """Conv features -> per-class non-negative density at 1/4 resolution -> sum = counts."""

    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, width),
            nn.MaxPool2d(2),
            _conv_block(width, width * 2),
            nn.MaxPool2d(2),
            _conv_block(width * 2, width * 2),
            _conv_block(width * 2, width * 2),
        )
        self.density = nn.Conv2d(width * 2, num_classes, 1)
        # Start the density near zero so that initial predictions are small counts, not noise.
        nn.init.normal_(self.density.weight, std=1e-3)
        nn.init.constant_(self.density.bias, -4.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        density = nn.functional.softplus(self.density(self.features(images)))
        return density.sum(dim=(2, 3))


@register_model("density_cnn")
def density_cnn(num_classes: int, width: int = 32) -> nn.Module:
    return DensityCounter(num_classes=num_classes, width=width)


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    if name not in MODEL_REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name](num_classes=num_classes, **kwargs)
