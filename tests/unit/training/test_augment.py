"""Augmentations move pixels but never create or destroy them (so counts are unchanged)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from doughflow.config import AugmentConfig
from doughflow.training import augment


@given(arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))), st.integers(0, 2**32 - 1))
def test_geometric_augmentations_permute_pixels(image, seed):
    cfg = AugmentConfig(rot90=True, hflip=True, vflip=True, brightness=0.0)
    params = augment.draw_params(np.random.default_rng(seed))
    out = augment.apply(image, params, cfg)
    assert out.dtype == np.uint8
    assert sorted(out.shape[:2]) == sorted(image.shape[:2])
    assert np.array_equal(np.sort(out.reshape(-1, 3), axis=0), np.sort(image.reshape(-1, 3), axis=0))


@given(st.integers(0, 2**32 - 1))
def test_every_sample_consumes_the_same_randomness(seed):
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    augment.draw_params(a)
    augment.draw_params(b)
    assert a.bit_generator.state == b.bit_generator.state
    params = augment.draw_params(a)
    assert 0 <= params[0] < 4 and -1.0 <= params[3] <= 1.0


def test_disabled_config_is_identity():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    cfg = AugmentConfig(rot90=False, hflip=False, vflip=False, brightness=0.0)
    assert not augment.enabled(cfg)
    assert np.array_equal(augment.apply(image, (3, True, True, 0.9), cfg), image)


@given(st.integers(0, 2**32 - 1), st.integers(1, 7), st.integers(1, 40))
def test_param_stream_gives_the_per_sample_sequence(seed, block, samples):
    """The loader draws in blocks; that must not change a single sample's parameters."""
    one_by_one = np.random.default_rng(seed)
    stream = augment.ParamStream(np.random.default_rng(seed), block=block)
    assert [stream.next() for _ in range(samples)] == [augment.draw_params(one_by_one) for _ in range(samples)]


def _reference(image, params, cfg):
    """The augmentation spelled out with numpy's own views, copied the slow, obvious way."""
    k, hflip, vflip, scale = params
    out = np.rot90(image, k, axes=(0, 1)) if cfg.rot90 else image
    out = out[:, ::-1] if cfg.hflip and hflip else out
    out = out[::-1] if cfg.vflip and vflip else out
    if cfg.brightness > 0:
        out = np.clip(out.astype(np.float32) * (1.0 + cfg.brightness * scale), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


@given(
    arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))),
    st.integers(0, 3),
    st.booleans(),
    st.booleans(),
    st.floats(-1.0, 1.0),
    st.sampled_from([0.0, 0.3]),
    st.booleans(),
)
def test_apply_into_writes_exactly_the_augmented_image(image, k, hflip, vflip, scale, brightness, rot90):
    cfg = AugmentConfig(rot90=rot90, hflip=True, vflip=True, brightness=brightness)
    params = (k, hflip, vflip, scale)
    expected = _reference(image, params, cfg)
    batch = np.zeros((2, *augment.output_shape(image.shape, params, cfg)), dtype=np.uint8)
    augment.apply_into(image, params, cfg, batch[1])
    assert np.array_equal(batch[1], expected) and not batch[0].any()
    assert np.array_equal(augment.apply(image, params, cfg), expected)
