"""Small real models and configs shared by the release tests: no training, fixed weights, seconds to build."""

from __future__ import annotations

import copy
import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import torch

from doughflow.config import ExperimentConfig
from doughflow.data.synthetic.pizza import _rng, render_pizza
from doughflow.export.onnx_export import export_onnx
from doughflow.preprocessing import Preprocessing
from doughflow.training.models import build_model

LABELS = ["pepperoni", "mushroom", "olive", "basil", "pepper"]


def tiny_config(**release) -> ExperimentConfig:
    config = ExperimentConfig()
    config.release.quantization.latency_repeats = 2
    config.release.quantization.calibration_samples = 16
    config.release.properties.examples = 6
    for key, value in release.items():
        setattr(config.release, key, value)
    return config


def fixed_model(seed: int = 0, width: int = 4) -> torch.nn.Module:
    """A DensityCounter with seeded weights and a density bias that gives counts around 1, so that
    rounding is exercised; BatchNorm statistics are non-trivial so every layer matters."""
    torch.manual_seed(seed)
    model = build_model("density_cnn", num_classes=len(LABELS), width=width)
    with torch.no_grad():
        model.density.weight.normal_(0.0, 0.05)
        model.density.bias.fill_(-5.0)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def perturbed(model: torch.nn.Module, scale: float = 0.5, seed: int = 1) -> torch.nn.Module:
    """The deliberately broken model: every weight moved by noise of ``scale`` times its spread."""
    broken = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in broken.parameters():
            spread = parameter.abs().mean()  # the size of its weights; a constant bias moves too
            parameter.add_(torch.randn(parameter.shape, generator=generator) * spread * scale)
    return broken.eval()


def pizzas(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """n real generator pizzas (uint8 NHWC) and their counts."""
    rng = np.random.default_rng(seed)
    images, counts = [], []
    for i in range(n):
        c = {label: int(rng.integers(0, 3)) for label in LABELS}
        images.append(render_pizza(c, _rng(seed, i), 64))
        counts.append([c[label] for label in LABELS])
    return np.stack(images), np.asarray(counts, np.float32)


def normalised(images: np.ndarray) -> np.ndarray:
    return Preprocessing(64).to_tensor(images).numpy()


@cache
def fixed_model_onnx() -> Path:
    """fixed_model() exported once per test process (the dynamo exporter takes seconds)."""
    return export_onnx(fixed_model(), Path(tempfile.mkdtemp(prefix="doughflow-test-")) / "model.onnx", 64, 18)
