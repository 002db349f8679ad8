"""Loss per problem, and the loss log: read at once or batched, a non-finite loss always named."""

from __future__ import annotations

import pytest
import torch

from doughflow.training.losses import LossLog, nan_message, problem_loss


def test_count_loss_is_mse_and_classification_is_cross_entropy_on_probabilities():
    outputs = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    counts = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]])
    assert float(problem_loss("count", outputs, counts)) == pytest.approx(float(((outputs - counts) ** 2).mean()))
    one_hot = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = -(one_hot * torch.log_softmax(outputs, dim=1)).sum(1).mean()
    assert float(problem_loss("classification", outputs, one_hot)) == pytest.approx(float(expected))


def test_eager_log_reads_every_loss():
    history: list[float] = []
    log = LossLog(lazy=False, history=history)
    assert log.flush() is None
    assert log.add(torch.tensor(2.5), "step 0", ["a"]) == 2.5
    assert log.add(torch.tensor(1.5), "step 1", ["b"]) == 1.5
    assert history == [2.5, 1.5] and log.flush() == 1.5


def test_lazy_log_reads_at_flush():
    history: list[float] = [9.0]
    log = LossLog(lazy=True, history=history)
    assert log.add(torch.tensor(2.0), "step 1", []) is None and log.add(torch.tensor(1.0), "step 2", []) is None
    assert history == [9.0] and len(log.pending) == 2
    assert log.flush() == 1.0 and history == [9.0, 2.0, 1.0] and log.pending == []
    assert log.flush() == 1.0


def test_lazy_log_names_the_first_non_finite_step_and_its_samples():
    log = LossLog(lazy=True, history=[])
    log.add(torch.tensor(1.0), "epoch 1 step 0", ["pz-1"])
    log.add(torch.tensor(float("inf")), "epoch 1 step 1", ["pz-2", "pz-3"])
    log.add(torch.tensor(float("nan")), "epoch 1 step 2", ["pz-4"])
    with pytest.raises(FloatingPointError, match=r"loss is inf at epoch 1 step 1 \(batch sample ids: pz-2, pz-3\)"):
        log.flush()


def test_nan_message_shows_eight_ids_and_the_remedies():
    message = nan_message(float("nan"), "epoch 2 step 5", [f"id{i}" for i in range(10)])
    assert "id0, id1, id2, id3, id4, id5, id6, id7 ..." in message and "id8" not in message
    assert "train.learning_rate" in message and "train.on_nan_loss=skip" in message
    assert "..." not in nan_message(1.0, "x", ["a", "b"])
