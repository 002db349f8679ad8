"""Behavioural (property-based) tests of a counting model on freshly drawn pizzas.

Aggregate accuracy can hide a model that ignores a topping or counts the crust; CheckList's three
kinds of test catch that: minimum functionality (empty pizza -> 0, one topping -> its count),
invariance (rotations, flips and moving toppings change no count) and directional (adding a topping
raises its count and no other). A broken int8 model (per-channel U8S8 on a CPU without VNNI, 0.008
exact-count accuracy) passed both invariance tests and failed the others, so all three kinds run, on the torch model and on every exported format.

Hypothesis draws the pizzas (fixed seed, no example database, generation only), so every run and
every format sees the same examples. Cases are collected first and predicted in one batch per format;
a property passes when at most ``max_failure_rate`` of its examples fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from doughflow.config import PropertyTestConfig
from doughflow.data.synthetic.pizza import _place_toppings, _rng, draw_base, paint_toppings

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

CAPACITY = 12  # the generator's toppings-per-pizza limit: keep tests in distribution

INVARIANCES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rot90": lambda image: np.rot90(image, 1, axes=(0, 1)),
    "rot180": lambda image: np.rot90(image, 2, axes=(0, 1)),
    "rot270": lambda image: np.rot90(image, 3, axes=(0, 1)),
    "flip_horizontal": lambda image: image[:, ::-1],
    "flip_vertical": lambda image: image[::-1],
}

KINDS = {
    "empty_pizza": "minimum functionality",
    "single_topping": "minimum functionality",
    **{f"invariance_{name}": "invariance" for name in INVARIANCES},
    "invariance_relayout": "invariance",
    "add_one_topping": "directional",
}


@dataclass(frozen=True)
class Scene:
    """A pizza: its counts, the seed of its base (table, crust, cheese) and of its topping layout."""

    counts: tuple[int, ...]
    base_seed: int
    layout_seed: int


def render_scene(scene: Scene, labels: list[str], size: int, added: str | None = None) -> np.ndarray:
    """Draw ``scene``; with ``added``, the same pizza with one more ``added`` topping put on top."""
    base = draw_base(_rng(scene.base_seed, 0, stream=1), size)
    counts = dict(zip(labels, scene.counts))
    layout = _place_toppings(counts, _rng(scene.layout_seed, 0, stream=2), base.cx, base.cy, base.sauce_r, base.scale)
    if added is not None:
        layout = _place_toppings(
            {added: 1},
            _rng(scene.layout_seed, 1, stream=2),
            base.cx,
            base.cy,
            base.sauce_r,
            base.scale,
            fixed=tuple(layout),
        )
    return paint_toppings(base, layout, lambda index: _rng(scene.layout_seed, index, stream=3))


@dataclass
class Case:
    """One example of one property: the images to predict and what the predictions must satisfy."""

    prop: str
    scene: Scene
    images: list[np.ndarray]
    label_index: int = -1  # the topping a single-topping or directional case is about


@dataclass
class PropertyResult:
    fmt: str
    prop: str
    kind: str
    examples: int
    failures: int
    failure_rate: float
    max_failure_rate: float
    worst_value: float  # the largest violation measure seen (see ``measure``)
    measure: str
    worst_example: dict = field(default_factory=dict)
    passed: bool = True


@contextmanager
def _without_local_constants() -> Iterator[None]:
    """Hypothesis mixes literals harvested from the *imported* local modules into its draws, so the
    same seed gives other pizzas in pytest than in the pipeline. Switch that off while we draw (a
    private hook, hypothesis is pinned in constraints-cpu.txt; if it moves, draws stay valid but may
    depend on what is imported)."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - layout of a future hypothesis
        yield
        return
    original = getattr(providers, "_get_local_constants", None)
    if original is None:  # pragma: no cover
        yield
        return
    providers._get_local_constants = lambda: providers.Constants()
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()


def _collect(strategy: SearchStrategy[Any], examples: int, seed: int) -> list[Any]:
    """Run Hypothesis as a seeded generator: every drawn value, in order, without shrinking."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    drawn: list[Any] = []

    @fix_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    with _without_local_constants():
        collect()
    return drawn[:examples]


def _scene_strategy(
    labels: list[str], max_count: int, *, min_total: int = 0, max_total: int = CAPACITY
) -> SearchStrategy[Scene]:
    from hypothesis import strategies as st

    seeds = st.integers(0, 2**31 - 1)
    counts = st.lists(st.integers(0, max_count), min_size=len(labels), max_size=len(labels)).filter(
        lambda c: min_total <= sum(c) <= max_total
    )
    return st.builds(lambda c, b, layout: Scene(tuple(c), b, layout), counts, seeds, seeds)


def generate_cases(labels: list[str], max_count: int, size: int, cfg: PropertyTestConfig) -> list[Case]:
    """Draw every property's examples; the same config gives the same pizzas."""
    from hypothesis import strategies as st

    k = len(labels)
    seeds = st.integers(0, 2**31 - 1)
    cases: list[Case] = []
    for b, layout in _collect(st.tuples(seeds, seeds), cfg.examples, cfg.seed):
        scene = Scene((0,) * k, b, layout)
        cases.append(Case("empty_pizza", scene, [render_scene(scene, labels, size)]))
    single = st.tuples(st.integers(0, k - 1), st.integers(1, max_count), seeds, seeds)
    for index, count, b, layout in _collect(single, cfg.examples, cfg.seed + 1):
        counts = tuple(count if j == index else 0 for j in range(k))
        scene = Scene(counts, b, layout)
        cases.append(Case("single_topping", scene, [render_scene(scene, labels, size)], index))
    for scene, relayout in _collect(st.tuples(_scene_strategy(labels, max_count), seeds), cfg.examples, cfg.seed + 2):
        image = render_scene(scene, labels, size)
        for name, transform in INVARIANCES.items():
            cases.append(Case(f"invariance_{name}", scene, [image, np.ascontiguousarray(transform(image))]))
        moved = Scene(scene.counts, scene.base_seed, relayout)
        cases.append(Case("invariance_relayout", scene, [image, render_scene(moved, labels, size)]))
    directional = st.tuples(_scene_strategy(labels, max_count, max_total=CAPACITY - 1), st.integers(0, k - 1))
    for scene, index in _collect(directional, cfg.examples * 3, cfg.seed + 3):
        if scene.counts[index] >= max_count:
            continue  # adding one would leave the training range: not a fair test
        cases.append(
            Case(
                "add_one_topping",
                scene,
                [render_scene(scene, labels, size), render_scene(scene, labels, size, added=labels[index])],
                index,
            )
        )
        if sum(case.prop == "add_one_topping" for case in cases) >= cfg.examples:
            break
    return cases


def _violation(case: Case, preds: list[np.ndarray], cfg: PropertyTestConfig) -> tuple[float, bool, str]:
    """(measure, failed, what the measure is) for one case."""
    truth = np.asarray(case.scene.counts, dtype=np.float64)
    if case.prop in ("empty_pizza", "single_topping"):
        value = float(np.abs(preds[0] - truth).max())
        return value, value >= cfg.mft_tolerance, f"max |pred - true| (fail at >= {cfg.mft_tolerance})"
    if case.prop.startswith("invariance_"):
        value = float(np.abs(preds[1] - preds[0]).max())
        return value, value > cfg.invariance_tolerance, f"max |pred change| (fail above {cfg.invariance_tolerance})"
    change = preds[1] - preds[0]
    rise = float(change[case.label_index])
    others = float(np.abs(np.delete(change, case.label_index)).max()) if len(change) > 1 else 0.0
    shortfall = max(cfg.directional_min_rise - rise, others - cfg.directional_max_other_change)
    failed = rise <= cfg.directional_min_rise or others >= cfg.directional_max_other_change
    return (
        shortfall,
        failed,
        (
            f"max(rise shortfall below {cfg.directional_min_rise}, other change above "
            f"{cfg.directional_max_other_change}); fail above 0"
        ),
    )


def run_properties(
    cases: list[Case],
    predict_images: Callable[[np.ndarray], np.ndarray],
    fmt: str,
    labels: list[str],
    cfg: PropertyTestConfig,
) -> list[PropertyResult]:
    """Predict every case's images in one batch (uint8 NHWC in, counts out) and score each property."""
    images = np.stack([image for case in cases for image in case.images])
    predictions = predict_images(images)
    results: dict[str, PropertyResult] = {}
    position = 0
    for case in cases:
        preds = list(predictions[position : position + len(case.images)])
        position += len(case.images)
        value, failed, measure = _violation(case, preds, cfg)
        result = results.setdefault(
            case.prop,
            PropertyResult(fmt, case.prop, KINDS[case.prop], 0, 0, 0.0, cfg.max_failure_rate, float("-inf"), measure),
        )
        result.examples += 1
        result.failures += int(failed)
        if value > result.worst_value:
            result.worst_value = value
            result.worst_example = {
                "counts": dict(zip(labels, case.scene.counts)),
                "base_seed": case.scene.base_seed,
                "layout_seed": case.scene.layout_seed,
                "topping": labels[case.label_index] if case.label_index >= 0 else None,
                "predictions": [[round(float(v), 3) for v in p] for p in preds],
            }
    for result in results.values():
        result.failure_rate = result.failures / result.examples if result.examples else 0.0
        result.passed = result.examples > 0 and result.failure_rate <= result.max_failure_rate
    return [results[name] for name in KINDS if name in results]


def results_to_json(results: list[PropertyResult]) -> list[dict]:
    return [asdict(result) for result in results]
