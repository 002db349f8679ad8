"""Counting (and classification) models in plain torch, built by name from the config.

A counter should add up evidence over the image rather than average it, so the default model
predicts a non-negative density map per topping and sums it: a pizza with twice the olives gets
twice the olive mass, whatever the layout. That inductive bias is why it trains to exact counts on a
CPU in minutes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

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


HEADS = ("density", "logits")


class LogitsHead(nn.Module):
    """Classification head: the features' global mean and global max -> one logit per class. The mean
    says how much of a pattern there is, the max whether it occurs anywhere (a corner, a point); a class
    is a property of the whole image, wherever and however large its object is. Two linear maps added
    rather than one over concatenated features: the same function, and ONNX Runtime's shape inference
    (run before int8 quantization) fails on that Concat."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.from_mean = nn.Linear(channels, num_classes)
        self.from_max = nn.Linear(channels, num_classes, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # The max as a MaxPool over the whole map (the image size is fixed at export): ONNX Runtime's
        # shape inference, which int8 quantization runs first, cannot follow an opset-18 ReduceMax.
        peak = nn.functional.max_pool2d(features, kernel_size=features.shape[2:]).flatten(1)
        return self.from_mean(features.mean(dim=(2, 3))) + self.from_max(peak)


def _check_head(head: str) -> None:
    if head not in HEADS:
        raise ValueError(f"model head must be one of {HEADS}, got {head!r} (train.model.options.head)")


def _density_head(channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 conv to per-class density, started near zero so that initial predictions are small
    counts, not noise."""
    density = nn.Conv2d(channels, num_classes, 1)
    assert density.bias is not None  # a Conv2d has a bias unless made with bias=False
    nn.init.normal_(density.weight, std=1e-3)
    nn.init.constant_(density.bias, -4.0)
    return density


class DensityCounter(nn.Module):
    """Conv features -> per-class non-negative density at 1/4 resolution -> sum = counts.
    With ``head="logits"`` the same features end in a :class:`LogitsHead` (classification)."""

    def __init__(self, num_classes: int, width: int = 32, head: str = "density") -> None:
        super().__init__()
        _check_head(head)
        self.features = nn.Sequential(
            _conv_block(3, width),
            nn.MaxPool2d(2),
            _conv_block(width, width * 2),
            nn.MaxPool2d(2),
            _conv_block(width * 2, width * 2),
            _conv_block(width * 2, width * 2),
        )
        self.head = head
        if head == "logits":
            self.classifier = LogitsHead(width * 2, num_classes)
            return
        self.density = _density_head(width * 2, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.head == "logits":
            return self.classifier(self.features(images))
        density = nn.functional.softplus(self.density(self.features(images)))
        return density.sum(dim=(2, 3))


@register_model("density_cnn")
def density_cnn(num_classes: int, width: int = 32, head: str = "density") -> nn.Module:
    return DensityCounter(num_classes=num_classes, width=width, head=head)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNetCounter(nn.Module):
    """ResNet-style backbone (ResNet-18 layout with blocks=[2, 2, 2, 2], width=64) with the same
    density head as the small counter, so it sums evidence too. Sized for GPUs; plain torch."""

    def __init__(
        self,
        num_classes: int,
        width: int = 64,
        blocks: list[int] | tuple[int, ...] = (2, 2, 2, 2),
        head: str = "density",
    ) -> None:
        super().__init__()
        _check_head(head)
        self.head = head
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        layers, cin = [], width
        for i, count in enumerate(blocks):
            cout = width * 2**i
            for j in range(count):
                layers.append(BasicBlock(cin, cout, stride=2 if (j == 0 and 0 < i < 3) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        if head == "logits":
            self.classifier = LogitsHead(cin, num_classes)
            return
        self.density = _density_head(cin, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.head == "logits":
            return self.classifier(self.layers(self.stem(images)))
        density = nn.functional.softplus(self.density(self.layers(self.stem(images))))
        return density.sum(dim=(2, 3))


@register_model("resnet")
def resnet(
    num_classes: int, width: int = 64, blocks: list[int] | tuple[int, ...] = (2, 2, 2, 2), head: str = "density"
) -> nn.Module:
    return ResNetCounter(num_classes=num_classes, width=width, blocks=blocks, head=head)


def accepts_head(factory: ModelFactory) -> bool:
    """Whether a factory takes ``head`` (by name or **kwargs): then a classification run asks it for logits."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "head" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def build_model(name: str, num_classes: int, problem: str = "count", **kwargs: Any) -> nn.Module:
    """Call the registered factory with ``num_classes`` and ``kwargs``. For ``problem="classification"`` a
    factory that takes ``head`` gets ``head="logits"`` (unless the options name one); one that does not
    must itself return ``[batch, num_classes]`` logits."""
    if name not in MODEL_REGISTRY:
        raise KeyError(
            f"unknown model {name!r} (train.model.name); registered: {sorted(MODEL_REGISTRY)}. "
            f"Register your own with @register_model and name its module in train.model.import_module"
        )
    factory = MODEL_REGISTRY[name]
    if problem == "classification" and "head" not in kwargs and accepts_head(factory):
        kwargs["head"] = "logits"
    return factory(num_classes=num_classes, **kwargs)
