"""Count-preserving augmentations on uint8 HxWx3 images, run inside the loader workers.

Rotations, flips and a brightness change move or recolour toppings but never add or remove one, so
they are free extra data for a counter. Parameters are drawn from a generator the caller seeds per
(seed, epoch, rank, worker), and every sample draws the same number of values whether or not it is
actually decoded, so a resumed epoch that skips samples stays on the same random sequence.
"""

from __future__ import annotations

import numpy as np

from doughflow.config import AugmentConfig


def draw_params(rng: np.random.Generator) -> tuple[int, bool, bool, float]:
    """Always four uniforms per sample (see module docstring), in one call: this runs per image."""
    u = rng.random(4)
    return min(3, int(u[0] * 4)), bool(u[1] < 0.5), bool(u[2] < 0.5), float(2.0 * u[3] - 1.0)


def apply(image: np.ndarray, params: tuple[int, bool, bool, float], cfg: AugmentConfig) -> np.ndarray:
    k, hflip, vflip, scale = params
    out = image
    if cfg.rot90 and k:
        out = np.rot90(out, k, axes=(0, 1))
    if cfg.hflip and hflip:
        out = out[:, ::-1]
    if cfg.vflip and vflip:
        out = out[::-1]
    if cfg.brightness > 0:
        factor = 1.0 + cfg.brightness * scale
        out = np.clip(out.astype(np.float32) * factor, 0, 255).astype(np.uint8)
    return out  # possibly a strided view: the batch's np.stack copies it once anyway


def enabled(cfg: AugmentConfig) -> bool:
    return cfg.rot90 or cfg.hflip or cfg.vflip or cfg.brightness > 0
