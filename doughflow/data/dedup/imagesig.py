"""Cheap per-image signals for near-dup and clustering, computed from decoded pixels.

Why these: perceptual hashes survive re-encoding and colour gains but not shifts (a 2-pixel shift
of a 64-pixel pizza moved dHash by 11 of 64 bits, as far as unrelated pizzas). So the hash is taken
after moving each image's "centre of content" (the centroid of pixels that differ from the border
colour) to the middle: a shifted copy is moved back and hashes like its original. pHash (signs of
low DCT frequencies) of that centred image kept every planted shifted or recoloured copy of the
pizza set within 10 of 64 bits. Candidates are then verified on grayscale thumbnails by the best
normalised correlation over small shifts, which separates copies (>= 0.9997) from distinct pizzas
(<= 0.873) on the pizza set, where no 64-bit hash distance does.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.fft import dctn

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


GRAY_SIDE = 64  # every hash and thumbnail starts from a 64x64 luminance image


def grayscale(pixels: np.ndarray, side: int = GRAY_SIDE) -> np.ndarray:
    """side x side float32 luminance (box-averaged), the common input of the signals below."""
    if pixels.ndim == 3 and pixels.shape[:2] == (side, side) and pixels.shape[2] == 3:
        return pixels.astype(np.float32) @ _LUMA
    gray = Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")
    if gray.size != (side, side):
        gray = gray.resize((side, side), Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.float32) @ _LUMA


def _box(grays: np.ndarray, side: int) -> np.ndarray:
    """n x S x S -> n x side x side by box averaging (exact when side divides S)."""
    full = grays.shape[1]
    if full % side == 0:
        f = full // side
        return grays.reshape(len(grays), side, f, side, f).mean(axis=(2, 4))
    return np.stack([np.asarray(Image.fromarray(g).resize((side, side), Image.Resampling.BOX), np.float32) for g in grays])


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    matrix = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def centred_batch(grays: np.ndarray, contrast: float = 20.0) -> np.ndarray:
    """``centred`` for n x S x S at once (the roll is the only per-image step)."""
    n, side = grays.shape[0], grays.shape[1]
    border = np.median(np.concatenate([grays[:, 0], grays[:, -1], grays[:, :, 0], grays[:, :, -1]], axis=1), axis=1)
    mask = np.abs(grays - border[:, None, None]) > contrast
    count = mask.sum(axis=(1, 2))
    index = np.arange(side, dtype=np.float64)
    cy = (mask.sum(axis=2) * index).sum(axis=1) / np.maximum(count, 1)
    cx = (mask.sum(axis=1) * index).sum(axis=1) / np.maximum(count, 1)
    middle = (side - 1) / 2
    out = np.empty_like(grays)
    for i in range(n):
        shift = (int(round(middle - cy[i])), int(round(middle - cx[i]))) if count[i] else (0, 0)
        out[i] = np.roll(grays[i], shift, axis=(0, 1))
    return out


def phash_batch(grays: np.ndarray, size: int = 8) -> np.ndarray:
    """``phash_bits`` for n x S x S at once: n x size*size/8 packed bytes."""
    side = max(32, 4 * size)
    small = _box(grays, side)
    d = _dct_matrix(side)[:size]
    low = np.einsum("ij,njk,lk->nil", d, small, d, optimize=True).reshape(len(grays), -1)
    median = np.median(low[:, 1:], axis=1)
    return np.packbits(low > median[:, None], axis=1)


def image_signatures(pixels: list[np.ndarray], method: str, size: int, thumb_side: int) -> tuple[np.ndarray, np.ndarray]:
    """(packed hashes, uint8 thumbnails n x thumb_side^2) of a batch of decoded images."""
    if not pixels:
        return np.zeros((0, (size * size + 7) // 8), np.uint8), np.zeros((0, thumb_side * thumb_side), np.uint8)
    grays = np.stack([grayscale(p) for p in pixels])
    if method == "dhash":
        hashes = np.stack([dhash_bits(p, size) for p in pixels])
    else:
        hashes = phash_batch(centred_batch(grays), size)
    thumbs = grays if thumb_side == GRAY_SIDE else _box(grays, thumb_side)
    return hashes, np.clip(np.rint(thumbs), 0, 255).astype(np.uint8).reshape(len(pixels), -1)


def centred(gray: np.ndarray, contrast: float = 20.0) -> np.ndarray:
    """Roll the image so the centroid of its content (pixels further than ``contrast`` from the
    median border value) sits in the middle."""
    border = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    ys, xs = np.nonzero(np.abs(gray - border) > contrast)
    if len(ys) == 0:
        return gray
    middle = (gray.shape[0] - 1) / 2, (gray.shape[1] - 1) / 2
    return np.roll(gray, (int(round(middle[0] - ys.mean())), int(round(middle[1] - xs.mean()))), axis=(0, 1))


def phash_bits(gray: np.ndarray, size: int = 8) -> np.ndarray:
    """size*size bits, packed: is each of the lowest size x size DCT frequencies of a 32x32 (or
    4*size) downscale above their median."""
    side = max(32, 4 * size)
    small = np.asarray(Image.fromarray(gray).resize((side, side), Image.Resampling.BOX), dtype=np.float32)
    low = dctn(small, norm="ortho")[:size, :size].ravel()
    return np.packbits(low > np.median(low[1:]))


def dhash_bits(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    """size*size bits, packed into bytes: is each pixel brighter than its right neighbour."""
    gray = Image.fromarray(pixels).convert("L").resize((size + 1, size), Image.Resampling.LANCZOS)
    grid = np.asarray(gray, dtype=np.int16)
    return np.packbits((grid[:, 1:] > grid[:, :-1]).ravel())


def shift_correlation(a: np.ndarray, b: np.ndarray, max_shift: int) -> np.ndarray:
    """Best Pearson correlation of each pair of thumbnails (n x side x side) over every offset up
    to ``max_shift`` pixels, on the overlap: 1.0 for a shifted or colour-scaled copy."""
    n, side = a.shape[0], a.shape[1]
    best = np.full(n, -1.0, dtype=np.float64)
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            x = a[:, max(0, dy):side + min(0, dy), max(0, dx):side + min(0, dx)].reshape(n, -1)
            y = b[:, max(0, -dy):side + min(0, -dy), max(0, -dx):side + min(0, -dx)].reshape(n, -1)
            x = x - x.mean(axis=1, keepdims=True)
            y = y - y.mean(axis=1, keepdims=True)
            denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
            score = np.where(denominator > 0, (x * y).sum(axis=1) / np.maximum(denominator, 1e-12),
                             np.all(x == y, axis=1).astype(np.float32))
            best = np.maximum(best, score)
    return best


def colour_histogram(pixels: np.ndarray, bins: int = 4) -> np.ndarray:
    """Normalised joint RGB histogram with bins^3 cells."""
    q = (pixels.reshape(-1, 3).astype(np.int32) * bins) // 256
    index = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    hist = np.bincount(index, minlength=bins ** 3).astype(np.float32)
    return hist / max(hist.sum(), 1.0)
