"""Which images reviewers see: stratified, worst errors and format disagreements, bounded, no repeats."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.config import ReviewConfig
from doughflow.review.sampling import format_disagreement, select_for_review

LABELS = ["a", "b", "c"]


@st.composite
def predictions(draw):
    n = draw(st.integers(0, 80))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 5, size=(n, len(LABELS))).astype(np.float32)
    pred = (true + rng.normal(0, draw(st.floats(0, 1.5)), size=true.shape)).astype(np.float32)
    other = (pred + rng.normal(0, 0.1, size=true.shape)).astype(np.float32)
    return true, pred, {"int8": other}


@settings(max_examples=60, deadline=None)
@given(predictions(), st.integers(0, 4), st.integers(0, 6), st.integers(0, 6), st.integers(1, 100))
def test_selection_bounded_unique_and_explained(data, per_stratum, worst, disagree, limit):
    true, pred, others = data
    config = ReviewConfig(per_stratum=per_stratum, worst_errors=worst, format_disagreements=disagree, max_samples=limit)
    selected = select_for_review(true, pred, LABELS, config, others)
    indices = [s.index for s in selected]
    assert len(indices) == len(set(indices)) <= limit
    assert all(0 <= i < len(true) for i in indices) and all(s.reasons for s in selected)
    assert indices == sorted(indices)
    assert selected == select_for_review(true, pred, LABELS, config, others)  # deterministic


@settings(max_examples=40, deadline=None)
@given(predictions(), st.integers(1, 3))
def test_every_stratum_is_seen_when_room(data, per_stratum):
    true, pred, others = data
    config = ReviewConfig(per_stratum=per_stratum, worst_errors=3, format_disagreements=2, max_samples=5000)
    selected = select_for_review(true, pred, LABELS, config, others)
    chosen = true[[s.index for s in selected]] if selected else np.zeros((0, len(LABELS)))
    for k in range(len(LABELS)):
        for count in np.unique(true[:, k]):
            have = int((chosen[:, k] == count).sum())
            assert have >= min(per_stratum, int((true[:, k] == count).sum()))


def test_worst_errors_and_disagreements_come_first_and_survive_a_small_packet():
    true = np.zeros((50, 3), np.float32)
    pred = true.copy()
    pred[17, 1] = 3.0  # the one real error
    other = pred.copy()
    other[33, 2] = 0.9  # the one image where the int8 model drifts
    selected = select_for_review(
        true,
        pred,
        LABELS,
        ReviewConfig(per_stratum=5, worst_errors=2, format_disagreements=1, max_samples=2),
        {"int8": other},
    )
    reasons = {s.index: " ".join(s.reasons) for s in selected}
    assert set(reasons) == {17, 33}
    assert "worst error" in reasons[17] and "int8 differs from torch by 0.900" in reasons[33]


def test_format_disagreement_names_the_worst_format():
    reference = np.zeros((2, 2))
    gap, which = format_disagreement(reference, {"x": np.array([[0.1, 0], [0, 0]]), "y": np.array([[0, 0], [0, -0.5]])})
    assert gap.tolist() == [0.1, 0.5] and which == ["x", "y"]
