"""Image preprocessing shared by training, evaluation, export checks and the bundle's JSON.

The bundle must let a consumer reproduce the model's input without our code, so every constant
here is also written to ``preprocessing.json``; keeping them in one object means they cannot drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from doughflow.config import ExperimentConfig
from doughflow.data.imagecodec import decode_image


@dataclass(frozen=True)
class Preprocessing:
    image_size: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    problem: str = "count"  # count | classification: names the output and how to read it

    @property
    def output_name(self) -> str:
        return "logits" if self.problem == "classification" else "counts"

    def decode(self, data: bytes) -> np.ndarray:
        """Encoded bytes -> HxWx3 uint8 at the model's size."""
        pixels = decode_image(data)
        if pixels.shape[:2] != (self.image_size, self.image_size):
            image = Image.fromarray(pixels).resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
        return pixels

    def to_tensor(self, pixels_nhwc: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> normalised float32 NCHW."""
        batch = torch.as_tensor(pixels_nhwc).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch - mean) / std

    def to_json(self) -> dict:
        return {
            "input_name": "images",
            "task": self.problem,
            "output_name": self.output_name,
            "layout": "NCHW",
            "dtype": "float32",
            "color_order": "RGB",
            "image_size": [self.image_size, self.image_size],
            "resize": "bilinear, when the image is not already image_size",
            "scale": 1.0 / 255.0,
            "mean": list(self.mean),
            "std": list(self.std),
            "formula": "x = (pixel / 255 - mean[c]) / std[c]",
            "postprocess": POSTPROCESS.get(self.problem, POSTPROCESS["count"]),
            **{"params": asdict(self)},
        }


POSTPROCESS = {
    "count": "counts are non-negative floats; round to the nearest integer for a count",
    "classification": "logits, one per label in labels.json order: softmax for probabilities, argmax for the class",
}


def preprocessing_for(config: ExperimentConfig) -> Preprocessing:
    from doughflow.data.adapters import problem_of

    return Preprocessing(image_size=config.data.image_size, problem=problem_of(config))
