"""Cheap per-image signals for near-dup and clustering, computed from decoded pixels.

dHash (horizontal gradient signs on a small grayscale grid) survives re-encoding, small shifts and
colour gains, which is what the pizza set's planted near copies are; a colour histogram is the cheap
feature k-means groups "looks" by.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def dhash_bits(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    """size*size bits, packed into bytes: is each pixel brighter than its right neighbour."""
    gray = Image.fromarray(pixels).convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
    grid = np.asarray(gray, dtype=np.int16)
    return np.packbits((grid[:, 1:] > grid[:, :-1]).ravel())


def colour_histogram(pixels: np.ndarray, bins: int = 4) -> np.ndarray:
    """Normalised joint RGB histogram with bins^3 cells."""
    q = (pixels.reshape(-1, 3).astype(np.int32) * bins) // 256
    index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    hist = np.bincount(index, minlength=bins ** 3).astype(np.float32)
    return hist / max(hist.sum(), 1.0)
