"""Inference outside the loop: trained weights load into the configured model; predict batches without changing results."""

from __future__ import annotations

import numpy as np
import torch

from doughflow.preprocessing import Preprocessing
from doughflow.training.inference import load_trained_model, make_model, predict
from tests.support.configs import tiny_train_config


def _images(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def test_make_model_follows_the_seed():
    cfg = tiny_train_config()
    torch.manual_seed(3)
    first = make_model(cfg, 5).state_dict()
    torch.manual_seed(3)
    again = make_model(cfg, 5).state_dict()
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)


def test_trained_weights_load_into_an_eval_mode_model(tmp_path):
    cfg = tiny_train_config(model={"name": "resnet", "width": 8, "options": {"blocks": [1, 1]}})
    torch.manual_seed(0)
    trained = make_model(cfg, 4, "classification")
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(0.01)  # not what a fresh model would start from
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    loaded = load_trained_model(tmp_path / "model.pt", 4, cfg, "classification")
    assert not loaded.training
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in loaded.state_dict().items())
    images = _images(3)
    assert np.array_equal(predict(loaded, images, Preprocessing(32)), predict(trained, images, Preprocessing(32)))


def test_predict_in_batches_matches_one_forward_pass():
    torch.manual_seed(0)
    model = make_model(tiny_train_config(), 5)
    images, preprocessing = _images(7), Preprocessing(32, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4))
    batched = predict(model, images, preprocessing, batch_size=3)
    with torch.no_grad():
        whole = model.eval()(preprocessing.to_tensor(images)).numpy()
    assert batched.shape == (7, 5) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)


def test_predict_on_no_images_is_empty():
    torch.manual_seed(0)
    out = predict(make_model(tiny_train_config(), 5), _images(0), Preprocessing(32))
    assert out.shape == (0, 0) and out.dtype == np.float32
