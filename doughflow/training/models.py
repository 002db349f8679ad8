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


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetCounter(nn.Module):
    """ResNet-style backbone (ResNet-18 layout with blocks=[2, 2, 2, 2], width=64) with the same
    density head as the small counter, so it sums evidence too. Sized for GPUs; plain torch."""

    def __init__(self, num_classes: int, width: int = 64, blocks: list[int] | tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        layers, cin = [], width
        for i, count in enumerate(blocks):
            cout = width * 2 ** i
            for j in range(count):
                layers.append(BasicBlock(cin, cout, stride=2 if (j == 0 and 0 < i < 3) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.density = nn.Conv2d(cin, num_classes, 1)
        nn.init.normal_(self.density.weight, std=1e-3)
        nn.init.constant_(self.density.bias, -4.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        density = nn.functional.softplus(self.density(self.layers(self.stem(images))))
        return density.sum(dim=(2, 3))


@register_model("resnet")
def resnet(num_classes: int, width: int = 64, blocks: list[int] | tuple[int, ...] = (2, 2, 2, 2)) -> nn.Module:
    return ResNetCounter(num_classes=num_classes, width=width, blocks=blocks)


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    if name not in MODEL_REGISTRY:
        raise KeyError(f"unknown model {name!r} (train.model.name); registered: {sorted(MODEL_REGISTRY)}. "
                       f"Register your own with @register_model and name its module in train.model.import_module")
    return MODEL_REGISTRY[name](num_classes=num_classes, **kwargs)
