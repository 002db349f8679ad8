"""Normalise a batch on the device it trains on, from the uint8 images the loader pins.

Converting after the copy moves 4x fewer bytes to a GPU (uint8, not float32), and the permuted view
keeps the channels-last layout that GPU convolutions prefer. The operations are those of
:meth:`doughflow.preprocessing.Preprocessing.to_tensor`, in the same order, so training, validation
and :func:`doughflow.training.inference.predict` see bit-identical inputs.
"""

from __future__ import annotations

import torch

from doughflow.preprocessing import Preprocessing


class Normalizer:
    """uint8 NHWC batch on the device -> normalised float NCHW, with mean/std already on the device."""

    def __init__(self, preprocessing: Preprocessing, device: torch.device):
        self.mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        return images_u8.permute(0, 3, 1, 2).float().div_(255.0).sub_(self.mean).div_(self.std)
