"""Checkpoint housekeeping and the weight hash the resume tests rely on."""

from __future__ import annotations

import torch

from doughflow.training.checkpoint import LoopState, latest_tag, mark_latest, prune, state_dict_hash


def test_prune_keeps_newest_and_latest(tmp_path):
    for step in (5, 10, 15, 20):
        (tmp_path / f"step-{step:08d}").mkdir()
    (tmp_path / "latest").write_text("step-00000005")  # e.g. a save that never finished its newer tags
    removed = prune(tmp_path, keep=2)
    assert removed == ["step-00000010"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["step-00000005", "step-00000015", "step-00000020"]


def test_state_dict_hash_sees_every_bit():
    state = {"w": torch.ones(3, 2), "n": torch.tensor(7)}
    same = {"n": torch.tensor(7), "w": torch.ones(3, 2)}
    assert state_dict_hash(state) == state_dict_hash(same)
    nudged = {"w": torch.ones(3, 2), "n": torch.tensor(7)}
    nudged["w"][1, 1] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    assert state_dict_hash(nudged) != state_dict_hash(state)


def test_loop_state_round_trips_through_client_state():
    state = LoopState(epoch=3, batches_done=7, best_score=0.9, fingerprint="abc")
    assert LoopState.from_client_state(state.to_client_state()) == state


def test_latest_pointer_is_replaced_whole_and_an_empty_one_names_nothing(tmp_path):
    assert latest_tag(tmp_path) is None
    (tmp_path / "latest").write_text("")  # a writer killed between open and write (DeepSpeed's own)
    assert latest_tag(tmp_path) is None
    for tag in ("step-00000002", "step-00000004"):
        mark_latest(tmp_path, tag)
        assert latest_tag(tmp_path) == tag
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]  # no temporary file left behind
