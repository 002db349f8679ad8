"""Streamed validation metrics equal the same metrics computed over all predictions at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from doughflow.preprocessing import Preprocessing
from doughflow.training.inference import make_model, predict
from doughflow.training.normalize import Normalizer
from doughflow.training.validation import validate
from tests.support.configs import tiny_train_config

CPU = torch.device("cpu")
PRE = Preprocessing(32)


def _batches(images: np.ndarray, targets: np.ndarray, size: int) -> list[dict]:
    return [
        {"images": torch.from_numpy(images[i : i + size]), "targets": torch.from_numpy(targets[i : i + size])}
        for i in range(0, len(images), size)
    ]


def _model(problem: str, classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return make_model(tiny_train_config(), classes, problem).train()


def test_count_metrics_match_all_at_once():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    model = _model("count", 5)
    pred = predict(model, images, PRE)
    model.train()
    targets = rng.integers(0, 3, pred.shape).astype(np.float32)
    targets[::2] = np.rint(np.clip(pred[::2], 0, None))  # half the rows exact, so accuracy is not trivially 0
    got = validate(model, _batches(images, targets, 5), Normalizer(PRE, CPU), CPU, None)
    expected_accuracy = float((np.rint(np.clip(pred, 0, None)) == targets).mean())
    assert got["mae"] == pytest.approx(float(np.abs(pred - targets).mean()), rel=1e-6)
    assert got["exact_count_accuracy"] == pytest.approx(expected_accuracy) and 0.5 <= expected_accuracy < 1
    assert model.training, "validation hands the model back in train mode"


def test_classification_metrics_match_all_at_once():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (17, 32, 32, 3), dtype=np.uint8)
    model = _model("classification", 4)
    logits = predict(model, images, PRE)
    labels = rng.integers(0, 4, len(images))
    targets = np.eye(4, dtype=np.float32)[labels]
    got = validate(model, _batches(images, targets, 4), Normalizer(PRE, CPU), CPU, None, "classification")
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    assert got["loss"] == pytest.approx(float(-log_probs[np.arange(len(labels)), labels].mean()), rel=1e-5)
    assert got["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).mean()))


def test_no_batches_give_no_metrics():
    model = _model("count", 5)
    assert validate(model, [], Normalizer(PRE, CPU), CPU, None) == {}
    assert model.training
