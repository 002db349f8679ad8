"""Checkpoint housekeeping and the weight hash the resume tests rely on."""

from __future__ import annotations

import random

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.training.checkpoint import LoopState, latest_tag, mark_latest, prune, state_dict_hash


def test_prune_keeps_newest_and_latest(tmp_path):
    for step in (5, 10, 15, 20):
        (tmp_path / f"step-{step:08d}").mkdir()
    (tmp_path / "latest").write_text("step-00000005")  # e.g. a save that never finished its newer tags
    removed = prune(tmp_path, keep=2)
    assert removed == ["step-00000010"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "step-00000005",
        "step-00000015",
        "step-00000020",
    ]


def test_state_dict_hash_sees_every_bit():
    state = {"w": torch.ones(3, 2), "n": torch.tensor(7)}
    same = {"n": torch.tensor(7), "w": torch.ones(3, 2)}
    assert state_dict_hash(state) == state_dict_hash(same)
    nudged = {"w": torch.ones(3, 2), "n": torch.tensor(7)}
    nudged["w"][1, 1] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    assert state_dict_hash(nudged) != state_dict_hash(state)


def test_loop_state_round_trips_through_json(tmp_path):
    state = LoopState(epoch=3, batches_done=7, best_score=0.9, fingerprint="abc")
    state.history["step_loss"] = [1.0, float("nan")]
    path = state.save(tmp_path, "step-00000007")
    back = LoopState.load(tmp_path, "step-00000007")
    assert path.name == "loop_state.json" and back.epoch == 3 and back.batches_done == 7 and back.fingerprint == "abc"
    assert back.history["step_loss"][0] == 1.0 and back.history["step_loss"][1] != back.history["step_loss"][1]


def test_latest_pointer_is_replaced_whole_and_an_empty_one_names_nothing(tmp_path):
    assert latest_tag(tmp_path) is None
    (tmp_path / "latest").write_text("")  # a writer killed between open and write (DeepSpeed's own)
    assert latest_tag(tmp_path) is None
    for tag in ("step-00000002", "step-00000004"):
        mark_latest(tmp_path, tag)
        assert latest_tag(tmp_path) == tag
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no temporary file left behind


def _states_equal(a: dict, b: dict) -> bool:
    return (
        a["python"] == b["python"]
        and a["numpy"][0] == b["numpy"][0]
        and np.array_equal(a["numpy"][1], b["numpy"][1])
        and tuple(a["numpy"][2:]) == tuple(b["numpy"][2:])
        and torch.equal(a["torch"], b["torch"])
    )


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_rng_states_round_trip_through_plain_arrays(seed, gauss_pending):
    """Any Python, numpy and torch generator state, a cached second Gaussian included, comes back exactly
    from the plain arrays (own generators: the process-wide ones are shared with whatever else runs)."""
    from doughflow.training.checkpoint import rng_arrays, rng_from_arrays

    python, numpy_rng = random.Random(seed), np.random.RandomState(seed)
    if gauss_pending:
        python.gauss(0, 1)
        numpy_rng.standard_normal()
    state = {
        "python": python.getstate(),
        "numpy": numpy_rng.get_state(),
        "torch": torch.Generator().manual_seed(seed).get_state(),
    }
    arrays = rng_arrays(state)
    assert all(array.dtype != object for array in arrays.values())  # nothing that needs a pickle
    assert _states_equal(rng_from_arrays(arrays), state)


def test_save_and_load_rng_restore_this_process_generators(tmp_path):
    from doughflow.training.checkpoint import load_rng, rng_path, rng_state, save_rng

    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    random.gauss(0, 1)
    save_rng(tmp_path, "step-00000001", 0)
    saved = rng_state()
    random.seed(4)
    np.random.seed(4)
    torch.manual_seed(4)
    assert load_rng(tmp_path, "step-00000001", 0)
    assert _states_equal(rng_state(), saved)
    assert not load_rng(tmp_path, "step-00000002", 0)  # nothing saved there
    with np.load(rng_path(tmp_path, "step-00000001", 0), allow_pickle=False) as arrays:  # no object arrays
        assert set(arrays.files) >= {"python", "numpy_keys", "torch"}


def _saved_tag(tmp_path):
    from doughflow.training.checkpoint import record_digests

    tag = tmp_path / "step-00000003"
    (tag / "zero").mkdir(parents=True)
    (tag / "mp_rank_00_model_states.pt").write_bytes(b"model")
    (tag / "zero" / "optim_states.pt").write_bytes(b"optimizer")
    record_digests(tmp_path, "step-00000003")
    return tag


def test_a_checkpoint_changed_after_its_save_is_refused_before_loading(tmp_path):
    import os

    import pytest

    from doughflow.training.checkpoint import CheckpointIntegrityError, verify_digests

    tag = _saved_tag(tmp_path)
    verify_digests(tmp_path, "step-00000003")  # as saved: fine
    tampering = {
        "sha256 differs": lambda: (tag / "mp_rank_00_model_states.pt").write_bytes(b"evil!"),
        "unlisted": lambda: (tag / "zero" / "extra.pt").write_bytes(b"x"),
        "missing": lambda: (tag / "zero" / "optim_states.pt").unlink(),
        "symlink": lambda: os.symlink("/etc/passwd", tag / "link.pt"),
        "no valid digest record": lambda: (tag / "sha256.json").unlink(),
    }
    for reason, tamper in tampering.items():
        tag = _saved_tag(tmp_path / reason.replace(" ", "-"))
        tamper()
        with pytest.raises(CheckpointIntegrityError, match=reason):
            verify_digests(tag.parent, "step-00000003")


def test_a_latest_pointer_naming_a_path_is_refused(tmp_path):
    import pytest

    from doughflow.training.checkpoint import CheckpointIntegrityError

    (tmp_path / "latest").write_text("../../../etc")
    with pytest.raises(CheckpointIntegrityError, match="not a checkpoint tag"):
        latest_tag(tmp_path)
