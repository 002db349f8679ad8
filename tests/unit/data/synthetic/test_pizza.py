import io
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from doughflow.config import PizzaGeneratorConfig
from doughflow.data.imagecodec import decode_image, encode_png
from doughflow.data.synthetic.pizza import (
    TOPPING_STYLES,
    PizzaGenerator,
    _pieces,
    generate_pizza_dataset,
    render_pizza,
)
from doughflow.toppings import DEFAULT_TOPPINGS, DRAWABLE_TOPPINGS, MAX_IMAGE_SIDE, MIN_IMAGE_SIDE

LABELS = ["pepperoni", "mushroom", "olive", "basil", "pepper"]


def test_generation_is_deterministic_and_sharded(tmp_path):
    config = PizzaGeneratorConfig(num_images=80, corrupt_rows=2)
    first = generate_pizza_dataset(config, LABELS, tmp_path / "a", image_size=64, rows_per_shard=30, workers=1)
    second = generate_pizza_dataset(config, LABELS, tmp_path / "b", image_size=64, rows_per_shard=30, workers=2)
    assert [p.name for p in first] == [p.name for p in second]
    assert len(first) == 3
    for a, b in zip(first, second):
        assert pq.read_table(a).equals(pq.read_table(b))
    # The shard size cuts the same rows differently; it changes no row.
    one_shard = generate_pizza_dataset(config, LABELS, tmp_path / "c", image_size=64, rows_per_shard=1000, workers=1)
    assert len(one_shard) == 1
    assert pq.read_table(one_shard[0]).equals(pa.concat_tables([pq.read_table(p) for p in first]))


@settings(max_examples=60)
@given(
    sizes=st.lists(st.integers(1, 500), min_size=1, max_size=8),
    piece_rows=st.integers(1, 600),
)
def test_pieces_cover_every_shard_in_order_within_the_piece_size(sizes, piece_rows):
    """The parallel writer's work units: each shard cut into even pieces, none crossing a shard."""
    edges = np.cumsum([0, *sizes])
    bounds = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    pieces = _pieces(bounds, piece_rows)
    assert [(start, stop) for _, start, stop in pieces][0][0] == 0
    for shard, (start, stop) in enumerate(bounds):
        own = [(a, b) for s, a, b in pieces if s == shard]
        assert own[0][0] == start and own[-1][1] == stop
        assert all(b1 == a2 for (_, b1), (a2, _) in zip(own, own[1:]))
        assert all(0 < b - a <= piece_rows for a, b in own)
        assert max(b - a for a, b in own) - min(b - a for a, b in own) <= 1
    assert [s for s, _, _ in pieces] == sorted(s for s, _, _ in pieces)


def test_the_generator_paints_exactly_the_drawable_toppings():
    """The config checks labels against DRAWABLE_TOPPINGS without importing the painters."""
    assert sorted(TOPPING_STYLES) == sorted(DRAWABLE_TOPPINGS)
    assert set(DEFAULT_TOPPINGS) <= set(DRAWABLE_TOPPINGS)


@pytest.mark.parametrize("size", [MIN_IMAGE_SIDE, 96])
def test_the_generator_draws_at_the_size_it_is_given(size):
    rows = list(PizzaGenerator(PizzaGeneratorConfig(num_images=10, corrupt_rows=0), LABELS, image_size=size).rows(0, 3))
    assert {decode_image(row["image"]).shape for row in rows} == {(size, size, 3)}


@pytest.mark.parametrize("size", [MIN_IMAGE_SIDE - 1, MAX_IMAGE_SIDE + 1])
def test_the_generator_refuses_sizes_it_cannot_draw(size):
    with pytest.raises(ValueError, match=f"image_size {size}: the generator draws {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE}"):
        PizzaGenerator(PizzaGeneratorConfig(num_images=10), LABELS, image_size=size)


def test_rows_carry_labels_customers_and_planted_mess():
    config = PizzaGeneratorConfig(num_images=400, exact_duplicate_rate=0.05, near_duplicate_rate=0.06, corrupt_rows=4)
    rows = list(PizzaGenerator(config, LABELS, image_size=64).rows())
    assert len(rows) == 400 + 20 + 24 + 4
    kinds = Counter(row["dup_kind"] for row in rows)
    assert kinds["exact"] == 20 and kinds["reencoded"] + kinds["shifted"] + kinds["recoloured"] == 24
    by_id = {row["sample_id"]: row for row in rows}
    for row in rows:
        if row["dup_kind"] == "exact":
            assert row["image"] == by_id[row["dup_of"]]["image"]
        if row["dup_kind"] == "reencoded":
            assert row["image"] != by_id[row["dup_of"]]["image"]
            assert np.array_equal(decode_image(row["image"]), decode_image(by_id[row["dup_of"]]["image"]))
    assert sum(1 for row in rows if row["defect"]) == 4
    # Skewed customers: the busiest customer owns far more than a uniform share.
    counts = Counter(row["customer_id"] for row in rows)
    assert counts.most_common(1)[0][1] > 10 * len(rows) / config.num_customers
    clean = [row for row in rows if not row["defect"]]
    assert all(0 <= row[f"count_{label}"] <= config.max_per_topping for row in clean for label in LABELS)
    assert {row["recipe"] for row in rows} >= {"margherita", "supreme"}


@settings(max_examples=25, deadline=None)
@given(counts=st.fixed_dictionaries({label: st.integers(0, 2) for label in LABELS}), seed=st.integers(0, 2**31))
def test_render_any_count_combination(counts, seed):
    pixels = render_pizza(counts, np.random.default_rng(seed), size=64)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    again = render_pizza(counts, np.random.default_rng(seed), size=64)
    assert np.array_equal(pixels, again)


@settings(max_examples=30, deadline=None)
@given(
    mode=st.sampled_from(["RGB", "RGBA", "L", "LA", "P", "1"]),
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    seed=st.integers(0, 2**16),
)
def test_png_decoding_gives_pillows_pixels_for_every_colour_type(mode, height, width, seed):
    """PNGs are decoded by libspng (pyspng), everything else by Pillow: both must agree exactly."""
    rgba = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    source = Image.fromarray(rgba, "RGBA") if "A" in mode else Image.fromarray(rgba[..., :3], "RGB")
    image = source.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    decoded = decode_image(buffer.getvalue())
    assert decoded.dtype == np.uint8 and decoded.shape == (height, width, 3)
    assert np.array_equal(decoded, expected)


def test_a_damaged_png_raises_a_clear_error():
    data = encode_png(render_pizza({label: 1 for label in LABELS}, np.random.default_rng(3), 64))
    for damaged in (data[: len(data) // 2], data[:40] + b"x" * 30 + data[70:]):
        with pytest.raises(ValueError, match="undecodable PNG"):
            decode_image(damaged)
