"""The built-in pizza image set: synthetic, deterministic, and realistic enough to be worth cleaning.

Each image is drawn from ``(seed, index)`` alone, so a row can be regenerated anywhere (a planted
copy re-draws its original instead of holding it in memory) and every machine gets the same bytes.
The set carries the mess a real one has: a skewed customer distribution, byte-identical resubmits,
re-encoded, shifted and recoloured near-copies, and a few corrupt rows. Ground truth for the planted
rows is kept in ``dup_of``/``dup_kind``/``defect`` so dedup and validation can be scored.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from doughflow.config import PizzaGeneratorConfig
from doughflow.data.imagecodec import encode_png
from doughflow.toppings import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE

RGB = tuple[int, int, int]
SUPERSAMPLE = 2  # draw at 2x and downsample: anti-aliased edges like a real photo's


@dataclass(frozen=True)
class ToppingStyle:
    """How a topping looks: a base colour and a shape painter; size is in output pixels."""

    colour: RGB
    radius: tuple[float, float]
    paint: Callable[[ImageDraw.ImageDraw, float, float, float, float, RGB, np.random.Generator], None]


def _rotated(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list[tuple[float, float]]:
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    return [(cx + x * cos_a - y * sin_a, cy + x * sin_a + y * cos_a) for x, y in points]


def _paint_pepperoni(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    for _ in range(3):  # darker fat spots
        dx, dy = rng.uniform(-0.5, 0.5, size=2) * r
        s = r * 0.18
        draw.ellipse((cx + dx - s, cy + dy - s, cx + dx + s, cy + dy + s), fill=tuple(int(c * 0.7) for c in colour))


def _paint_mushroom(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    cap = [(r * math.cos(t), -r * 0.35 - r * 0.65 * math.sin(t)) for t in np.linspace(0, math.pi, 12)]
    stem = [(-r * 0.3, -r * 0.35), (-r * 0.3, r * 0.9), (r * 0.3, r * 0.9), (r * 0.3, -r * 0.35)]
    draw.polygon(_rotated(cap, cx, cy, angle), fill=colour)
    draw.polygon(_rotated(stem, cx, cy, angle), fill=tuple(min(255, c + 30) for c in colour))


def _paint_olive(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    draw.ellipse((cx - r, cy - r * 0.85, cx + r, cy + r * 0.85), outline=colour, width=max(1, int(r * 0.55)))


def _paint_basil(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    leaf = [(r * math.cos(t), r * 0.45 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 16, endpoint=False)]
    draw.polygon(_rotated(leaf, cx, cy, angle), fill=colour)
    draw.line(_rotated([(-r, 0), (r, 0)], cx, cy, angle), fill=tuple(int(c * 0.6) for c in colour), width=1)


def _paint_pepper(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    arc = [(r * math.cos(t), r * math.sin(t) * 0.6) for t in np.linspace(-2.2, 2.2, 10)]
    inner = [(x * 0.55, y * 0.55) for x, y in reversed(arc)]
    draw.polygon(_rotated(arc + inner, cx, cy, angle), fill=colour)


def _paint_onion(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    arc = [(r * math.cos(t), r * math.sin(t)) for t in np.linspace(0, math.pi * 1.3, 10)]
    draw.line(_rotated(arc, cx, cy, angle), fill=colour, width=max(1, int(r * 0.45)))


def _paint_pineapple(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    wedge = [(-r, -r * 0.6), (r, -r * 0.6), (0, r)]
    draw.polygon(_rotated(wedge, cx, cy, angle), fill=colour)


def _paint_ham(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float, colour: RGB, rng: np.random.Generator
) -> None:
    square = [(-r * 0.8, -r * 0.8), (r * 0.8, -r * 0.8), (r * 0.8, r * 0.8), (-r * 0.8, r * 0.8)]
    draw.polygon(_rotated(square, cx, cy, angle), fill=colour)


TOPPING_STYLES: dict[str, ToppingStyle] = {
    "pepperoni": ToppingStyle((135, 22, 28), (3.4, 4.6), _paint_pepperoni),
    "mushroom": ToppingStyle((150, 130, 110), (3.4, 4.4), _paint_mushroom),
    "olive": ToppingStyle((25, 25, 25), (3.0, 3.8), _paint_olive),
    "basil": ToppingStyle((40, 140, 40), (3.6, 4.8), _paint_basil),
    "pepper": ToppingStyle((90, 200, 60), (3.6, 4.6), _paint_pepper),
    "onion": ToppingStyle((170, 70, 160), (3.2, 4.2), _paint_onion),
    "pineapple": ToppingStyle((250, 210, 0), (3.4, 4.4), _paint_pineapple),
    "ham": ToppingStyle((240, 150, 160), (3.2, 4.2), _paint_ham),
}

MEATS = {"pepperoni", "ham"}


def recipe_menu(labels: list[str], featured: str | None = None) -> list[tuple[str, float, list[str]]]:
    """Recipes as (name, probability, toppings allowed). Built from the label list so that adding a
    topping to the config adds it to the menu without code changes. A ``featured`` topping is a
    launch: its own recipes take 60% of the orders, as a new recipe does in its first months."""
    veggie = [label for label in labels if label not in MEATS]
    menu: list[tuple[str, float, list[str]]] = [("margherita", 0.06, [])]
    menu += [(f"{label}_special", 0.24 / len(labels), [label]) for label in labels]
    menu += [("veggie", 0.15, veggie), ("supreme", 0.35, list(labels)), ("custom", 0.20, ["*"])]
    if featured is not None:
        menu = [(name, 0.4 * p, allowed) for name, p, allowed in menu]
        menu += [(f"{featured}_launch", 0.35, [featured]), (f"{featured}_supreme", 0.25, list(labels))]
    return menu


@dataclass(frozen=True)
class MenuEra:
    """One batch of the built-in set: the photos taken while ``menu`` was served. The base era has
    no featured topping; each later era launches one."""

    menu: tuple[str, ...]
    featured: str | None = None

    @property
    def name(self) -> str:
        return self.featured or "base"


def menu_history(config: PizzaGeneratorConfig, labels: list[str]) -> list[MenuEra]:
    """The base menu, then one era per label beyond it, in label order. An era's menu holds every
    topping launched before it, so adding one more label later leaves the earlier eras' bytes alone."""
    menu = list(config.base_menu) if config.base_menu is not None else list(labels)
    eras = [MenuEra(tuple(menu))]
    for label in labels:
        if label not in menu:
            menu.append(label)
            eras.append(MenuEra(tuple(menu), label))
    return eras


def _rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index, stream]))


def _topping_seed(seed: int, topping: str) -> int:
    """A launch batch's seed: stable across machines and Python runs (no ``hash()``)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{topping}".encode()).digest()[:8], "big")


def draw_counts(
    labels: list[str], max_per_topping: int, rng: np.random.Generator, capacity: int, featured: str | None = None
) -> tuple[str, dict[str, int]]:
    """Pick a recipe, then a count per allowed topping; redraw until the pizza has room for all."""
    menu = recipe_menu(labels, featured)
    probs = np.array([p for _, p, _ in menu])
    choice = rng.choice(len(menu), p=probs / probs.sum())
    recipe, _, allowed = menu[choice]
    if allowed == ["*"]:
        allowed = [label for label in labels if rng.random() < 0.5]
    while True:
        counts = {label: int(rng.integers(0, max_per_topping + 1)) if label in allowed else 0 for label in labels}
        if allowed and recipe != "margherita" and sum(counts.values()) == 0:
            continue
        if sum(counts.values()) <= capacity:
            return recipe, counts


def _place_toppings(
    counts: dict[str, int],
    rng: np.random.Generator,
    cx: float,
    cy: float,
    sauce_r: float,
    scale: float,
    fixed: tuple[tuple[str, float, float, float], ...] = (),
) -> list[tuple[str, float, float, float]]:
    """Random non-overlapping positions inside the sauce; restarts the layout when it paints itself
    into a corner, which keeps the count of every topping exact. ``fixed`` toppings stay where they
    are (a behavioural test adds one topping to an existing pizza)."""
    wanted = [label for label, count in counts.items() for _ in range(count)]
    for _restart in range(50):
        placed: list[tuple[str, float, float, float]] = list(fixed)
        for label in wanted:
            r = rng.uniform(*TOPPING_STYLES[label].radius) * scale
            limit = sauce_r - r - 0.5 * scale
            for _attempt in range(60):
                ang, dist = rng.uniform(0, 2 * math.pi), limit * math.sqrt(rng.random())
                px, py = cx + dist * math.cos(ang), cy + dist * math.sin(ang)
                if all(math.hypot(px - qx, py - qy) > r + qr + 1.0 * scale for _, qx, qy, qr in placed):
                    placed.append((label, px, py, r))
                    break
            else:
                break
        if len(placed) == len(fixed) + len(wanted):
            return placed
    raise RuntimeError(f"no room for {len(wanted)} toppings on one pizza; lower max_per_topping")


@dataclass
class PizzaBase:
    """A drawn pizza without toppings, at the supersampled size, and where toppings may go."""

    image: Image.Image
    cx: float
    cy: float
    sauce_r: float
    scale: float
    size: int


def draw_base(rng: np.random.Generator, size: int = 64) -> PizzaBase:
    """Table, crust, sauce and cheese: everything of a pizza except its toppings."""
    scale = size / 64.0 * SUPERSAMPLE
    canvas = size * SUPERSAMPLE
    table = tuple(int(v) for v in rng.integers([90, 60, 30], [150, 110, 70]))
    image = Image.new("RGB", (canvas, canvas), table)
    draw = ImageDraw.Draw(image)
    cx, cy = canvas / 2 + rng.uniform(-2, 2, size=2) * scale
    crust_r = rng.uniform(28.5, 31) * scale
    sauce_r = crust_r - rng.uniform(2.5, 3.5) * scale
    draw.ellipse((cx - crust_r, cy - crust_r, cx + crust_r, cy + crust_r), fill=(222, 184, 120))
    draw.ellipse((cx - sauce_r, cy - sauce_r, cx + sauce_r, cy + sauce_r), fill=(196, 60, 40))
    for _ in range(int(rng.integers(10, 18))):  # melted cheese blobs
        ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0, sauce_r * 0.8)
        bx, by = cx + dist * math.cos(ang), cy + dist * math.sin(ang)
        br = rng.uniform(4, 8) * scale
        shade = tuple(int(v) for v in rng.integers([240, 215, 130], [256, 235, 170]))
        draw.ellipse((bx - br, by - br * 0.8, bx + br, by + br * 0.8), fill=shade)
    return PizzaBase(image, float(cx), float(cy), float(sauce_r), scale, size)


def paint_toppings(
    base: PizzaBase,
    layout: list[tuple[str, float, float, float]],
    rng: np.random.Generator | Callable[[int], np.random.Generator],
) -> np.ndarray:
    """Paint ``layout`` on a copy of the base and downsample. ``rng`` may be one generator for all
    toppings, or a function of the topping's index (so adding a topping leaves the others as they were)."""
    image = base.image.copy()
    draw = ImageDraw.Draw(image)
    for index, (label, px, py, r) in enumerate(layout):
        topping_rng = rng(index) if callable(rng) else rng
        style = TOPPING_STYLES[label]
        jitter = topping_rng.integers(-18, 19, size=3)
        red, green, blue = (min(255, max(0, c + int(j))) for c, j in zip(style.colour, jitter))
        colour = (red, green, blue)
        style.paint(draw, px, py, r, topping_rng.uniform(0, 2 * math.pi), colour, topping_rng)
    image = image.resize((base.size, base.size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def render_pizza(counts: dict[str, int], rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Draw a pizza with exactly ``counts`` toppings; toppings never overlap, so counts are well defined."""
    base = draw_base(rng, size)
    layout = _place_toppings(counts, rng, base.cx, base.cy, base.sauce_r, base.scale)
    return paint_toppings(base, layout, rng)


def near_copy(pixels: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A copy that a byte hash misses: same pixels re-encoded, or shifted, or slightly recoloured.
    Returns the pixels and the PNG compress level to encode them with."""
    if kind == "reencoded":
        return pixels, 1  # identical pixels, different bytes
    if kind == "shifted":
        dx, dy = (int(v) for v in rng.choice([-2, -1, 1, 2], size=2))
        shifted = np.roll(pixels, (dy, dx), axis=(0, 1))
        return shifted, 6
    if kind == "recoloured":
        gain = rng.uniform(0.94, 1.06, size=3)
        return np.clip(pixels.astype(np.float32) * gain, 0, 255).astype(np.uint8), 6
    raise ValueError(f"unknown near-copy kind {kind!r}")


class PizzaGenerator:
    """Plans every row up front (cheap integers), then draws rows lazily, shard by shard."""

    NEAR_KINDS = ("reencoded", "shifted", "recoloured")

    def __init__(
        self, config: PizzaGeneratorConfig, labels: list[str], featured: str | None = None, *, image_size: int
    ) -> None:
        """``labels`` is the menu drawn from; with ``featured`` this is a launch batch of
        ``new_recipe_images`` pizzas whose seed and ids derive from the featured topping, so no
        batch repeats another's images or ids. Images are ``image_size`` pixels square."""
        unknown = [label for label in labels if label not in TOPPING_STYLES]
        if unknown:
            raise ValueError(f"cannot draw toppings {unknown}; known: {sorted(TOPPING_STYLES)}")
        if featured is not None and featured not in labels:
            raise ValueError(f"featured topping {featured!r} is not on the menu {labels}")
        if not MIN_IMAGE_SIDE <= image_size <= MAX_IMAGE_SIDE:
            raise ValueError(f"image_size {image_size}: the generator draws {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE} pixels")
        self.config = config
        self.image_size = image_size
        self.labels = list(labels)
        self.featured = featured
        self.num_images = config.num_images if featured is None else config.new_recipe_images
        self.seed = config.seed if featured is None else _topping_seed(config.seed, featured)
        self.id_prefix = "pz-" if featured is None else f"pz-{featured}-"
        self.capacity = 12
        self.plan = self._plan()
        self._customer_probs = self._customers()
        self.first_position = {index: pos for pos, (kind, index) in enumerate(self.plan) if kind == "original"}

    def _plan(self) -> list[tuple[str, int]]:
        cfg, n = self.config, self.num_images
        rng = _rng(self.seed, 0, stream=2**31)
        plan = [("original", i) for i in range(n)]
        n_exact = int(round(n * cfg.exact_duplicate_rate))
        n_near = int(round(n * cfg.near_duplicate_rate))
        for i in rng.integers(0, n, size=n_exact):
            plan.append(("exact", int(i)))
        for j, i in enumerate(rng.integers(0, n, size=n_near)):
            plan.append((self.NEAR_KINDS[j % len(self.NEAR_KINDS)], int(i)))
        for i in rng.integers(0, n, size=cfg.corrupt_rows):
            plan.append(("corrupt", int(i)))
        order = rng.permutation(len(plan))
        return [plan[k] for k in order]

    def _customers(self) -> np.ndarray:
        ranks = np.arange(1, self.config.num_customers + 1, dtype=np.float64)
        weights = ranks**-self.config.customer_skew
        return weights / weights.sum()

    def original(self, index: int) -> tuple[np.ndarray, str, dict[str, int], str]:
        cfg = self.config
        rng = _rng(self.seed, index)
        recipe, counts = draw_counts(self.labels, cfg.max_per_topping, rng, self.capacity, self.featured)
        pixels = render_pizza(counts, rng, self.image_size)
        customer = int(rng.choice(cfg.num_customers, p=self._customer_probs))
        return pixels, recipe, counts, f"cust-{customer:05d}"

    def sample_id(self, position: int) -> str:
        return f"{self.id_prefix}{position:07d}"

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, str | bytes | int]]:
        """Rows at plan positions [start, stop): any range can be drawn independently."""
        for position in range(start, len(self.plan) if stop is None else stop):
            kind, index = self.plan[position]
            pixels, recipe, counts, customer = self.original(index)
            rng = _rng(self.seed, index, stream=position + 1)
            row: dict[str, str | bytes | int] = {
                "sample_id": self.sample_id(position),
                "customer_id": customer,
                "recipe": recipe,
                "dup_of": "",
                "dup_kind": "",
                "defect": "",
            }
            if kind == "original":
                image = encode_png(pixels)
            elif kind == "exact":
                image = encode_png(pixels)
                row.update(dup_of=self.sample_id(self.first_position[index]), dup_kind="exact")
            elif kind == "corrupt":
                image = encode_png(pixels)
                if position % 2 == 0:
                    image = image[: len(image) // 3]
                    row["defect"] = "truncated_image"
                else:
                    counts = dict(counts)
                    counts[self.labels[0]] = -1 if position % 4 == 1 else 99
                    row["defect"] = "bad_label"
            else:
                copy, level = near_copy(pixels, kind, rng)
                image = encode_png(copy, compress_level=level)
                row.update(dup_of=self.sample_id(self.first_position[index]), dup_kind=kind)
            row["image"] = image
            for label in self.labels:
                row[f"count_{label}"] = counts[label]
            yield row

    def schema(self) -> pa.Schema:
        fields = [
            pa.field("sample_id", pa.string()),
            pa.field("image", pa.binary()),
            pa.field("customer_id", pa.string()),
            pa.field("recipe", pa.string()),
        ]
        fields += [pa.field(f"count_{label}", pa.int16()) for label in self.labels]
        fields += [pa.field("dup_of", pa.string()), pa.field("dup_kind", pa.string()), pa.field("defect", pa.string())]
        return pa.schema(fields)


def _draw_rows(
    config: PizzaGeneratorConfig,
    labels: list[str],
    start: int,
    stop: int,
    featured: str | None,
    image_size: int,
) -> pa.Table:
    """Rows [start, stop) of the plan as one Arrow table (a worker process's unit of work)."""
    generator = PizzaGenerator(config, labels, featured, image_size=image_size)
    return pa.Table.from_pylist(list(generator.rows(start, stop)), schema=generator.schema())


def _write(tables: list[pa.Table], path: Path) -> None:
    pq.write_table(pa.concat_tables(tables).combine_chunks(), path)


def _pieces(bounds: list[tuple[int, int]], piece_rows: int) -> list[tuple[int, int, int]]:
    """(shard, start, stop) pieces of at most about ``piece_rows`` rows, each within one shard, cut evenly."""
    pieces = []
    for shard, (start, stop) in enumerate(bounds):
        count = max(1, math.ceil((stop - start) / piece_rows))
        edges = np.linspace(start, stop, count + 1).round().astype(int)
        pieces += [(shard, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
    return pieces


def generate_pizza_dataset(
    config: PizzaGeneratorConfig,
    labels: list[str],
    out_dir: Path,
    *,
    image_size: int,
    rows_per_shard: int,
    progress: bool = False,
    workers: int | None = None,
    featured: str | None = None,
) -> list[Path]:
    """Write the set (or, with ``featured``, one launch batch) as Parquet shards of ``rows_per_shard``
    rows of ``image_size``-pixel images, drawn by one process per core.

    Processes draw pieces of shards (a sixth of a process's share of the set, at most a shard), and this
    process writes each shard when its pieces are in, in order; at most three pieces per process are
    in flight, so memory stays bounded at any size. Whole shards per process left a core idle for the
    last shard: the built-in 6,424 rows in shards of 2,000 went 4,000 rows to one process and 2,424 to
    the other. Every row depends on its plan position alone, so the files are the same for any count
    of processes (tests/unit/data/synthetic/test_pizza.py)."""
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be at least 1, got {rows_per_shard}")
    total = len(PizzaGenerator(config, labels, featured, image_size=image_size).plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = [(start, min(start + rows_per_shard, total)) for start in range(0, total, rows_per_shard)]
    paths = [out_dir / f"part-{i:05d}.parquet" for i in range(len(bounds))]
    workers = workers or min(len(bounds) * 4, os.cpu_count() or 1)
    if workers <= 1:
        for (start, stop), path in zip(bounds, paths):
            _write([_draw_rows(config, labels, start, stop, featured, image_size)], path)
        return paths
    from tqdm import tqdm

    pieces = _pieces(bounds, max(1, math.ceil(total / (workers * 6))))
    pending: deque[tuple[int, Future[pa.Table]]] = deque()
    tables: list[pa.Table] = []
    shard_now = 0
    with (
        ProcessPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc="drawing pizza shards", unit="shard", disable=not progress) as bar,
    ):
        for shard, start, stop in pieces:
            pending.append((shard, pool.submit(_draw_rows, config, labels, start, stop, featured, image_size)))
            if len(pending) >= workers * 3:
                shard_now = _collect(pending, tables, shard_now, paths, bar)
        while pending:
            shard_now = _collect(pending, tables, shard_now, paths, bar)
        if tables:
            _write(tables, paths[shard_now])
            bar.update(1)
    return paths


def _collect(
    pending: deque[tuple[int, Future[pa.Table]]], tables: list[pa.Table], shard_now: int, paths: list[Path], bar: Any
) -> int:
    """Take the oldest piece; when it starts the next shard, write the finished one first."""
    shard, future = pending.popleft()
    table = future.result()
    if shard != shard_now:
        _write(tables, paths[shard_now])
        bar.update(1)
        tables.clear()
        shard_now = shard
    tables.append(table)
    return shard_now
