"""Count-preserving augmentations on uint8 HxWx3 images, run inside the loader workers.

Rotations, flips and a brightness change move or recolour toppings but never add or remove one, so
they are free extra data for a counter. Parameters are drawn from a generator the caller seeds per
(seed, epoch, rank, worker), and every sample draws the same number of values whether or not it is
actually decoded, so a resumed epoch that skips samples stays on the same random sequence.

This runs once per image in every worker, and a GPU eats tens of thousands of images a second, so
the cost per image matters (see :func:`apply_into`).
"""

from __future__ import annotations

import numpy as np

from doughflow.config import AugmentConfig

Params = tuple[int, bool, bool, float]
_VALUES_PER_SAMPLE = 4


def _params(u: np.ndarray) -> Params:
    return min(3, int(u[0] * 4)), bool(u[1] < 0.5), bool(u[2] < 0.5), float(2.0 * u[3] - 1.0)


def draw_params(rng: np.random.Generator) -> Params:
    """Always four uniforms per sample (see module docstring)."""
    return _params(rng.random(_VALUES_PER_SAMPLE))


class ParamStream:
    """The values of repeated :func:`draw_params` calls, drawn a block of samples at a time.

    A Generator's uniforms come out in the same order however they are batched, so this is the same
    sequence (a property test checks it) for about a tenth of the Python work per image.
    """

    def __init__(self, rng: np.random.Generator, block: int = 512) -> None:
        self.rng = rng
        self.block = block
        self._values = np.empty((0, _VALUES_PER_SAMPLE))
        self._next = 0

    def next(self) -> Params:
        if self._next == len(self._values):
            self._values = self.rng.random((self.block, _VALUES_PER_SAMPLE))
            self._next = 0
        self._next += 1
        return _params(self._values[self._next - 1])


def _geometric_view(image: np.ndarray, params: Params, cfg: AugmentConfig) -> np.ndarray:
    k, hflip, vflip, _ = params
    view = image
    if cfg.rot90 and k:
        # np.rot90(view, k, axes=(0, 1)) as plain slicing: np.rot90's own checks cost more than the view
        view = view[:, ::-1].swapaxes(0, 1) if k == 1 else view[::-1, ::-1] if k == 2 else view[::-1].swapaxes(0, 1)
    if cfg.hflip and hflip:
        view = view[:, ::-1]
    if cfg.vflip and vflip:
        view = view[::-1]
    return view


def output_shape(image_shape: tuple[int, ...], params: Params, cfg: AugmentConfig) -> tuple[int, ...]:
    height, width, *rest = image_shape
    turned = cfg.rot90 and params[0] % 2 == 1
    return (width, height, *rest) if turned else (height, width, *rest)


def apply_into(image: np.ndarray, params: Params, cfg: AugmentConfig, out: np.ndarray) -> None:
    """Write the augmented ``image`` into ``out`` (its slot in the batch), copying the pixels once.

    A rotated or flipped view has 3-byte pixels at odd strides, and numpy copies such a view one
    byte at a time in an inner loop of three: 150-230 us for a 128 px image. Copying it one colour
    plane at a time gives inner loops a row long: 25-40 us. Brightness then works in place on the
    contiguous result.
    """
    view = _geometric_view(image, params, cfg)
    if view is image or view.ndim < 3:
        out[...] = view
    else:
        for channel in range(view.shape[2]):
            out[..., channel] = view[..., channel]
    if cfg.brightness > 0:
        factor = 1.0 + cfg.brightness * params[3]
        out[...] = np.clip(out.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def apply(image: np.ndarray, params: Params, cfg: AugmentConfig) -> np.ndarray:
    """The augmented image as a new array (the loader writes into its batch with :func:`apply_into`)."""
    out = np.empty(output_shape(image.shape, params, cfg), dtype=image.dtype)
    apply_into(image, params, cfg, out)
    return out


def enabled(cfg: AugmentConfig) -> bool:
    return cfg.rot90 or cfg.hflip or cfg.vflip or cfg.brightness > 0
