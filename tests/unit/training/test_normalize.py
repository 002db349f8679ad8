"""Normalising on the device gives exactly what Preprocessing.to_tensor gives (training = evaluation inputs)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from doughflow.preprocessing import Preprocessing
from doughflow.training.normalize import Normalizer

channel = st.floats(0.05, 0.95, allow_nan=False)
spread = st.floats(0.05, 2.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    images=st.tuples(st.integers(0, 3), st.integers(1, 9), st.integers(1, 9)).flatmap(
        lambda shape: arrays(np.uint8, (*shape, 3))
    ),
    mean=st.tuples(channel, channel, channel),
    std=st.tuples(spread, spread, spread),
)
def test_normalizer_is_bit_identical_to_preprocessing(images, mean, std):
    preprocessing = Preprocessing(images.shape[1], mean, std)
    got = Normalizer(preprocessing, torch.device("cpu"))(torch.from_numpy(images))
    expected = preprocessing.to_tensor(images)
    assert got.shape == (images.shape[0], 3, images.shape[1], images.shape[2]) and got.dtype == torch.float32
    assert torch.equal(got, expected)
