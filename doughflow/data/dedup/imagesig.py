"""Cheap per-image signals for near-dup and clustering, computed from decoded pixels.

Near-dup at a million rows needs candidates that grow with n, not n^2. The 64-bit pHash of the
centred image (kept as ``phash_centred``) kept planted copies within 10 bits, but distinct pizzas
share so much layout that 6-bit pigeonhole blocks held hundreds of rows each: 33,900 candidate
pairs for 20k rows, recall 0.996, 42 s. The default signature (``spectrum_signature``) compares
pairs of low-frequency DFT magnitudes: shifts leave them unchanged, and bits compare coefficients
of equal radius, so each is a fair coin across images. 484 bits in 12 blocks of 40: every planted
copy of 100k pizzas shared a block with its original, distinct pizzas 0.009 times per row at 1M.
Candidates are verified on 32 px grayscale thumbnails by their best correlation over sub-pixel
shifts (``fourier_correlation``): copies >= 0.995, the closest distinct pizzas <= 0.85. The
cluster cap's embedding (``content_histogram``) is the colour histogram of the central disc.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
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
        return box_sum(grays, full // side, np.float32) / np.float32((full // side) ** 2)
    return np.stack(
        [np.asarray(Image.fromarray(g).resize((side, side), Image.Resampling.BOX), np.float32) for g in grays]
    )


def box_sum(images: np.ndarray, factor: int, dtype: npt.DTypeLike) -> np.ndarray:
    """Sums of factor x factor blocks over axes 1 and 2 of n x S x S (x C) images, in ``dtype``.
    Strided adds, not a reshape-mean: numpy reduces over non-adjacent axes 10x slower (measured:
    1.2 of 3.4 s of one 10k-row shard's signals)."""
    total = np.zeros((images.shape[0], images.shape[1] // factor, images.shape[2] // factor) + images.shape[3:], dtype)
    for dy in range(factor):
        for dx in range(factor):
            total += images[:, dy::factor, dx::factor]
    return total


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


# --- the spectrum signature ---------------------------------------------------------------------

SPECTRUM_RADIUS = 12  # low frequencies up to 12 cycles per 64 px: the layout of toppings, not noise
_PAIR_SEED = 20261203  # fixes which coefficients each bit compares; changing it changes every signature
_PAIR_WIDTH = 0.75  # a bit compares two coefficients whose radii differ by at most this


@functools.lru_cache(maxsize=4)
def _spectrum_basis(side: int, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Real DFT matrices for the coefficients 0 < |k| <= radius of one half plane (a real image's
    other half is their complex conjugate): (rows 2M x side, columns side x 2K, selection mask
    M x K, radius of each selected coefficient)."""
    ky = np.r_[0 : radius + 1, -radius:0]
    kx = np.arange(radius + 1)
    y = np.arange(side)
    angle_y = 2 * np.pi * np.outer(ky, y) / side
    angle_x = 2 * np.pi * np.outer(y, kx) / side
    rows = np.vstack([np.cos(angle_y), np.sin(angle_y)]).astype(np.float32)
    columns = np.hstack([np.cos(angle_x), np.sin(angle_x)]).astype(np.float32)
    rad = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    mask = (rad > 0) & (rad <= radius) & ~((kx[None, :] == 0) & (ky[:, None] < 0))
    return rows, columns, mask, rad[mask]


def spectrum_magnitudes(grays: np.ndarray, radius: int = SPECTRUM_RADIUS) -> np.ndarray:
    """n x S x S luminance -> n x m magnitudes of its low-frequency DFT coefficients, by two
    matrix products (~190k multiply-adds an image at 64 px, no full FFT)."""
    n, side = grays.shape[0], grays.shape[1]
    rows, columns, mask, _ = _spectrum_basis(side, radius)
    k = columns.shape[1] // 2
    m = rows.shape[0] // 2
    along_x = (grays.reshape(n * side, side) @ columns).reshape(n, side, 2 * k)  # [X Cx, X Sx]
    both = np.matmul(rows, along_x)  # n x 2M x 2K: [Cy; Sy] @ [Ac, As]
    real = both[:, :m, :k] - both[:, m:, k:]
    imag = both[:, :m, k:] + both[:, m:, :k]
    return np.sqrt(real * real + imag * imag)[:, mask]


@functools.lru_cache(maxsize=8)
def _comparison_pairs(bits: int, radius: int = SPECTRUM_RADIUS, side: int = GRAY_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Which two coefficients each signature bit compares: drawn once from a fixed seed, always
    two of about the same radius, so each bit is a coin flip over different images."""
    radii = _spectrum_basis(side, radius)[3]
    rng = np.random.default_rng(_PAIR_SEED)
    first: list[int] = []
    second: list[int] = []
    while len(first) < bits:
        a = int(rng.integers(len(radii)))
        near = np.flatnonzero((np.abs(radii - radii[a]) <= _PAIR_WIDTH) & (np.arange(len(radii)) != a))
        first.append(a)
        second.append(int(rng.choice(near)))
    return np.array(first), np.array(second)


def spectrum_signature(grays: np.ndarray, bits: int) -> np.ndarray:
    """n x ceil(bits/8) packed bits: is one low-frequency DFT magnitude above another of the same radius.

    Why: DFT magnitudes do not move when an image is shifted cyclically and barely move for a
    small shift or a colour gain, so a planted shifted copy of a pizza hashes identically and a
    recoloured one differs in at most 12 of 480 bits; distinct pizzas differ in ~40% of bits and,
    split into 12 blocks of 40 bits, share a block for 0.009 pairs per row at 1M rows (measured on
    100k pizzas). Comparing coefficients of one radius (instead of each with the median, as pHash
    does) keeps every bit balanced: spectra fall with frequency, so median bits are nearly fixed.
    Magnitudes forget phase (an image and its 180-degree rotation share them): candidates are
    verified on thumbnails (``fourier_correlation``)."""
    first, second = _comparison_pairs(bits, SPECTRUM_RADIUS, grays.shape[1])
    magnitudes = spectrum_magnitudes(grays)
    return np.packbits(magnitudes[:, first] > magnitudes[:, second], axis=1)


# --- thumbnails and their verification -----------------------------------------------------------


def thumbnails(grays: np.ndarray, side: int) -> np.ndarray:
    """n x side*side uint8 luminance thumbnails (box averages of the 64 px grays)."""
    small = grays if grays.shape[1] == side else _box(grays, side)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8).reshape(len(grays), side * side)


@functools.lru_cache(maxsize=8)
def _shift_phases(side: int, radius: float, max_shift: float, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the rfft2 coefficients 0 < |k| <= radius: (their mask, weights counting the mirrored
    half plane twice, real and imaginary parts of the phase ramp of every shift on the grid
    -max_shift..max_shift in ``step``, as m x shifts float32 matrices stacked)."""
    ky = np.fft.fftfreq(side) * side
    kx = np.arange(side // 2 + 1)
    rad = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    mask = (rad > 0) & (rad <= radius)
    weight = np.where(kx[None, :].repeat(side, 0) % (side // 2) == 0, 1.0, 2.0)[mask].astype(np.float32)
    offsets = np.arange(-max_shift, max_shift + step / 2, step) if max_shift > 0 else np.zeros(1)
    dy, dx = (o.ravel() for o in np.meshgrid(offsets, offsets, indexing="ij"))
    angle = (
        2
        * np.pi
        * (np.outer(ky[:, None].repeat(len(kx), 1)[mask], dy) + np.outer(kx[None, :].repeat(side, 0)[mask], dx))
        / side
    )
    return mask, weight, np.stack([np.cos(angle), np.sin(angle)]).astype(np.float32)


def fourier_correlation(
    a: np.ndarray, b: np.ndarray, max_shift: float = 1.0, step: float = 0.5, radius: float | None = None
) -> np.ndarray:
    """Best correlation of each pair of thumbnails (n x side x side) over shifts up to
    ``max_shift`` thumbnail pixels in ``step`` steps, computed on their low frequencies.

    Why in the frequency domain: a 1-pixel shift of a 64 px image is half a pixel of a 32 px
    thumbnail, which no integer offset undoes (planted shifted copies scored 0.82 with integer
    offsets). A phase ramp shifts by any fraction: shifted and recoloured copies score >= 0.995,
    the closest distinct pizzas of the same recipe and counts <= 0.85 (measured, 3.9k pizzas).
    Frequencies above ``radius`` (default 3/8 of the side) are left out: box averaging aliases
    them, and DC is left out so that brightness does not count. 1.0 for two identical flat
    images, which have no other frequency."""
    n, side = a.shape[0], a.shape[1]
    if n == 0:
        return np.zeros(0)
    mask, weight, (cos, sin) = _shift_phases(
        side, float(radius if radius is not None else side * 3 / 8), float(max_shift), float(step)
    )
    fa = np.fft.rfft2(a.astype(np.float32))[:, mask]
    fb = np.fft.rfft2(b.astype(np.float32))[:, mask]
    cross = fa * np.conj(fb) * weight
    # Re(cross * e^{i angle}) summed over coefficients, for every shift at once: two real products
    best = (cross.real.astype(np.float32) @ cos - cross.imag.astype(np.float32) @ sin).max(axis=1)
    norm = np.sqrt((np.abs(fa) ** 2 * weight).sum(1) * (np.abs(fb) ** 2 * weight).sum(1))
    flat = norm <= 1e-6
    same = np.all(a.reshape(n, -1) == b.reshape(n, -1), axis=1)
    return np.where(flat, same.astype(np.float64), best / np.maximum(norm, 1e-12))


# --- the cluster embedding -----------------------------------------------------------------------

EMBED_BINS = 4  # per RGB channel: 64 colours
EMBED_SIDE = 32


def content_histogram(rgb_small: np.ndarray, bins: int = EMBED_BINS, disc: float = 0.8) -> np.ndarray:
    """n x bins^3 uint8: square roots of the colour shares inside the central disc (``disc`` of
    the half side) of n x S x S x 3 images, scaled to 0..255.

    Why the centre: the border of a product photo is its background (the pizza set's table, a
    random brown per photo). On the whole image, 16 k-means clusters of RGB histograms had an
    adjusted mutual information of 0.003 with the recipe, i.e. clustered on table colour; on the
    central disc, 0.36 with the recipe and 0.51 with which toppings are present (3k pizzas,
    measured). Square roots make Euclidean k-means compare histograms by Hellinger distance,
    so a small topping colour counts beside the large cheese and sauce areas."""
    n, side = rgb_small.shape[0], rgb_small.shape[1]
    yy, xx = np.mgrid[0:side, 0:side]
    centre = (side - 1) / 2
    inside = ((yy - centre) ** 2 + (xx - centre) ** 2) <= (disc * side / 2) ** 2
    quantised = (rgb_small[:, inside].astype(np.int32) * bins) >> 8
    index = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    index += (np.arange(n) * bins**3)[:, None]
    counts = np.bincount(index.ravel(), minlength=n * bins**3).reshape(n, bins**3)
    shares = counts / max(int(inside.sum()), 1)
    return np.clip(np.rint(np.sqrt(shares) * 255), 0, 255).astype(np.uint8)


def rgb_thumbnail(pixels: np.ndarray, side: int = EMBED_SIDE) -> np.ndarray:
    """side x side x 3 box average of one decoded image (uint8)."""
    h, w = pixels.shape[:2]
    if h == w and h % side == 0:
        factor = h // side
        return ((box_sum(pixels[None], factor, np.uint32)[0] + factor * factor // 2) // (factor * factor)).astype(
            np.uint8
        )
    return np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize((side, side), Image.Resampling.BOX))
