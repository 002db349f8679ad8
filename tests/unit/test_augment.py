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
