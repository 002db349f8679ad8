"""A trained model outside the training loop: build it from a TrainConfig, load its weights, predict.

The evaluate, export, formats, behaviour and review stages use only this, so they import neither
DeepSpeed nor the loop, and load the ``model.pt`` the loop wrote (whole fp32 weights, gathered from
every ZeRO-3 shard) into the very architecture it trained.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch

from doughflow.config import TrainConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training.models import build_model


def import_model_module(cfg: TrainConfig) -> None:
    """Import the module ``train.model.import_module`` names, which registers a user's model factory."""
    if cfg.model.import_module:
        importlib.import_module(cfg.model.import_module)


def make_model(cfg: TrainConfig, num_classes: int, problem: str = "count") -> torch.nn.Module:
    """The model ``train.model`` describes, freshly initialised from torch's RNG (seed it first)."""
    import_model_module(cfg)
    return build_model(
        cfg.model.name, num_classes=num_classes, problem=problem, width=cfg.model.width, **cfg.model.options
    )


def load_trained_model(
    model_path: str | Path, num_classes: int, cfg: TrainConfig, problem: str = "count"
) -> torch.nn.Module:
    """The trained weights at ``model_path`` in the config's architecture, on the CPU, in eval mode."""
    model = make_model(cfg, num_classes, problem)
    model.load_state_dict(torch.load(model_path, map_location="cpu", weights_only=True))
    return model.eval()


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: np.ndarray,
    preprocessing: Preprocessing,
    batch_size: int = 256,
    device: torch.device | None = None,
) -> np.ndarray:
    """Model outputs (counts or logits) for uint8 NHWC images, ``batch_size`` at a time; (0, 0) for none."""
    model.eval()
    device = device or next(model.parameters()).device
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = preprocessing.to_tensor(torch.as_tensor(images[start : start + batch_size]).to(device))
        outputs.append(model(batch).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
