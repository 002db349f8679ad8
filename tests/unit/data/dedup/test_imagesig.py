"""Image signals: the batched hash equals the one-image reference, survives the pizza set's planted
shifts and colour gains, and verification tells copies from different pizzas."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.config import PizzaGeneratorConfig
from doughflow.data.dedup.imagesig import centred, grayscale, image_signatures, phash_bits, shift_correlation
from doughflow.data.dedup.lsh import bucket_pairs, hamming
from doughflow.data.synthetic.pizza import PizzaGenerator, near_copy, render_pizza

LABELS = ["pepperoni", "mushroom", "olive", "basil", "pepper"]


def pizzas(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    gen = PizzaGenerator(PizzaGeneratorConfig(num_images=max(n, 10), seed=seed), LABELS, image_size=64)
    return [gen.original(i)[0] for i in range(n)] + [render_pizza({"olive": 1}, rng)]


def test_batched_hash_equals_reference_and_thumbnails_are_gray():
    images = pizzas(12)
    hashes, thumbs = image_signatures(images, "phash_centred", 8, 64)
    reference = np.stack([phash_bits(centred(grayscale(p)), 8) for p in images])
    assert np.array_equal(hashes, reference) and hashes.shape == (13, 8)
    assert thumbs.shape == (13, 64 * 64) and thumbs.dtype == np.uint8
    assert image_signatures([], "phash_centred", 8, 32)[1].shape == (0, 32 * 32)
    small = image_signatures(images[:2], "dhash", 8, 32)
    assert small[0].shape == (2, 8) and small[1].shape == (2, 32 * 32)


@settings(max_examples=25, deadline=None, derandomize=True)  # a fixed sample of seeds: no flaky CI
@given(st.integers(0, 10_000), st.sampled_from(["reencoded", "shifted", "recoloured"]))
def test_planted_copies_stay_close_and_verify(seed, kind):
    original = pizzas(1, seed)[0]
    copy, _ = near_copy(original, kind, np.random.default_rng(seed))
    (h, t) = image_signatures([original, copy], "phash_centred", 8, 64)
    assert hamming(h[:1], h[1:])[0] <= 10
    assert shift_correlation(t[:1].reshape(1, 64, 64), t[1:].reshape(1, 64, 64), 2)[0] >= 0.95


def test_different_pizzas_do_not_verify():
    images = pizzas(40)
    _, thumbs = image_signatures(images, "phash_centred", 8, 64)
    thumbs = thumbs.reshape(-1, 64, 64)
    i, j = np.triu_indices(len(images), k=1)
    assert shift_correlation(thumbs[i], thumbs[j], 2).max() < 0.95
    flat = np.full((2, 8, 8), 7, np.uint8)
    assert list(shift_correlation(flat, flat, 1)) == [1.0, 1.0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 255)), min_size=2, max_size=40, unique=True),
       st.integers(2, 8), st.integers(0, 1000))
def test_bucket_pairs_finds_every_close_pair_in_small_buckets_whatever_the_order(rows, limit, seed):
    frame = pd.DataFrame({"bucket": [b for b, _ in rows], "key": np.arange(len(rows), dtype=np.int64) * 7919 % 1009,
                          "sig": [bytes([v]) for _, v in rows]})
    got = bucket_pairs(frame.sample(frac=1.0, random_state=seed), 1, 2, limit)
    assert (got["a"] < got["b"]).all() and not got.duplicated().any()
    edges = set(zip(got["a"], got["b"]))
    for _, group in frame.groupby("bucket"):
        keys, sigs = group["key"].to_numpy(), np.array([s[0] for s in group["sig"]], np.uint8)
        for x in range(len(group)):
            for y in range(len(group)):
                if keys[x] < keys[y] and bin(int(sigs[x]) ^ int(sigs[y])).count("1") <= 2:
                    if len(group) <= limit or keys[x] == keys.min():
                        assert (keys[x], keys[y]) in edges
