"""Behavioural property tests: the generated pizzas are right, and each kind of property catches the
kind of breakage it is meant to (oracle predictors make the expected outcome exact)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.config import PropertyTestConfig
from doughflow.evaluation.behaviour import KINDS, Scene, generate_cases, render_scene, run_properties
from doughflow.export.runtimes import onnx_predictor, torch_predictor
from doughflow.preprocessing import Preprocessing
from doughflow.release.gates import FAILED, PASSED, property_gate
from tests.support.release import LABELS, fixed_model, fixed_model_onnx, perturbed

CFG = PropertyTestConfig(examples=12, seed=3, max_failure_rate=0.0)


@pytest.fixture(scope="module")
def cases():
    return generate_cases(LABELS, 3, 64, CFG)


def oracle(cases, offset: float = 0.0, drop_label: int | None = None, transformed_shift: float = 0.0):
    """A predictor that knows every generated image's true counts, optionally broken on purpose."""
    truth: dict[bytes, np.ndarray] = {}
    originals: set[bytes] = set()
    for case in cases:
        counts = np.asarray(case.scene.counts, np.float32)
        truth.setdefault(case.images[0].tobytes(), counts)
        originals.add(case.images[0].tobytes())
        if len(case.images) > 1:
            second = counts.copy()
            if case.prop == "add_one_topping":
                second[case.label_index] += 1
            truth.setdefault(case.images[1].tobytes(), second)

    def predict(images: np.ndarray) -> np.ndarray:
        out = np.stack([truth[np.ascontiguousarray(image).tobytes()] for image in images]).astype(np.float32) + offset
        if drop_label is not None:
            out[:, drop_label] = 0.0
        if transformed_shift:
            out += np.array(
                [[0.0 if image.tobytes() in originals else transformed_shift] for image in images], np.float32
            )
        return out

    return predict


def by_prop(results):
    return {r.prop: r for r in results}


def test_generation_is_deterministic_and_covers_every_property(cases):
    again = generate_cases(LABELS, 3, 64, CFG)
    assert [c.scene for c in again] == [c.scene for c in cases]
    assert all(np.array_equal(a, b) for x, y in zip(cases, again) for a, b in zip(x.images, y.images))
    assert {c.prop for c in cases} == set(KINDS)
    for case in cases:
        if case.prop == "empty_pizza":
            assert sum(case.scene.counts) == 0
        if case.prop == "single_topping":
            assert sum(1 for c in case.scene.counts if c) == 1 and case.scene.counts[case.label_index] >= 1
        if case.prop == "add_one_topping":
            assert case.scene.counts[case.label_index] < 3


def test_a_correct_model_passes_every_property(cases):
    results = run_properties(cases, oracle(cases), "oracle", LABELS, CFG)
    assert all(r.passed and r.failures == 0 for r in results)
    assert property_gate("oracle", results, None).status == PASSED


def test_offset_breaks_minimum_functionality_only(cases):
    results = by_prop(run_properties(cases, oracle(cases, offset=0.6), "offset", LABELS, CFG))
    assert not results["empty_pizza"].passed and not results["single_topping"].passed
    assert all(results[p].passed for p in KINDS if p.startswith("invariance_")) and results["add_one_topping"].passed


def test_orientation_sensitive_model_fails_invariance(cases):
    results = by_prop(run_properties(cases, oracle(cases, transformed_shift=0.8), "rot", LABELS, CFG))
    assert all(not results[p].passed for p in KINDS if p.startswith("invariance_"))
    assert results["empty_pizza"].passed and results["single_topping"].passed


def test_blind_to_a_topping_fails_functionality_and_directional(cases):
    label = next(c.label_index for c in cases if c.prop == "add_one_topping")
    results = by_prop(run_properties(cases, oracle(cases, drop_label=label), "blind", LABELS, CFG))
    assert results["add_one_topping"].failures >= 1 and not results["add_one_topping"].passed
    if any(c.prop == "single_topping" and c.label_index == label for c in cases):
        assert not results["single_topping"].passed
    assert property_gate("blind", list(results.values()), None).status == FAILED


def test_failure_rate_threshold_decides(cases):
    lenient = CFG.model_copy(update={"max_failure_rate": 1.0})
    results = run_properties(cases, oracle(cases, offset=0.6), "offset", LABELS, lenient)
    assert all(r.passed for r in results)


def test_perturbed_real_model_fails_and_formats_agree(cases):
    pre = Preprocessing(64)
    model = fixed_model()
    torch_results = run_properties(
        cases, lambda im: torch_predictor(model)(pre.to_tensor(im).numpy()), "torch", LABELS, CFG
    )
    onnx_results = run_properties(
        cases, lambda im: onnx_predictor(fixed_model_onnx())(pre.to_tensor(im).numpy()), "onnx", LABELS, CFG
    )
    assert [(r.prop, r.failures) for r in torch_results] == [(r.prop, r.failures) for r in onnx_results]
    broken = perturbed(model, scale=1.0)
    broken_results = run_properties(
        cases, lambda im: torch_predictor(broken)(pre.to_tensor(im).numpy()), "broken", LABELS, CFG
    )
    assert property_gate("broken", broken_results, None).status == FAILED


@settings(max_examples=8, deadline=None)
@given(
    counts=st.lists(st.integers(0, 2), min_size=5, max_size=5),
    base=st.integers(0, 10**6),
    layout=st.integers(0, 10**6),
    label=st.integers(0, 4),
)
def test_adding_a_topping_changes_only_a_small_patch(counts, base, layout, label):
    scene = Scene(tuple(counts), base, layout)
    before = render_scene(scene, LABELS, 64)
    after = render_scene(scene, LABELS, 64, added=LABELS[label])
    assert np.array_equal(before, render_scene(scene, LABELS, 64))
    changed = np.argwhere(np.abs(before.astype(int) - after.astype(int)).max(axis=2) > 0)
    assert len(changed) > 0
    extent = changed.max(axis=0) - changed.min(axis=0)
    assert extent.max() <= 16  # one topping (radius <= 4.8 px) plus resampling halo
