import json

import numpy as np
import pytest
import torch

from doughflow.config import TrainConfig
from doughflow.data.pizza import draw_counts, render_pizza
from doughflow.preprocessing import Preprocessing
from doughflow.training.data import ArraySplit
from doughflow.training.models import build_model
from doughflow.training.trainer import deepspeed_config, load_trained_model, train_model

LABELS = ["pepperoni", "olive"]


def _pizzas(n: int, seed: int) -> ArraySplit:
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for _ in range(n):
        _, counts = draw_counts(LABELS, 3, rng, capacity=12)
        images.append(render_pizza(counts, rng, 64))
        targets.append([counts[label] for label in LABELS])
    return ArraySplit([f"s{i}" for i in range(n)], np.stack(images), np.asarray(targets, np.float32))


@pytest.fixture(scope="module")
def small_data():
    return _pizzas(192, 0), _pizzas(48, 1)


def _config(**changes) -> TrainConfig:
    base = dict(epochs=6, micro_batch_size=32, warmup_steps=3, learning_rate=1e-2, model={"name": "density_cnn", "width": 8})
    return TrainConfig(**(base | changes))


def test_deepspeed_loss_falls_and_artifacts_are_written(small_data, tmp_path):
    train, val = small_data
    result = train_model(train, val, len(LABELS), _config(), Preprocessing(), tmp_path)
    assert result.final_loss < 0.5 * result.first_loss
    assert len(result.history["epoch"]) == 6 and "val_mae" in result.history["epoch"][0]
    assert json.loads(open(result.ds_config_path).read())["zero_optimization"]["stage"] == 0
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "epoch-0006"
    model = load_trained_model(result.model_path, len(LABELS), _config())
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)


def test_rerun_resumes_from_the_last_checkpoint(small_data, tmp_path):
    train, val = small_data
    first = train_model(train, val, len(LABELS), _config(epochs=1), Preprocessing(), tmp_path)
    assert first.resumed_from_epoch == 0 and first.epochs_run == 1
    resumed = train_model(train, val, len(LABELS), _config(epochs=2), Preprocessing(), tmp_path)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_run == 1
    assert len(resumed.history["epoch"]) == 2


def test_nan_loss_stops_with_a_clear_error(small_data, tmp_path):
    train, val = small_data
    poisoned = ArraySplit(train.ids, train.images, np.full_like(train.targets, np.nan))
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1 step 0"):
        train_model(poisoned, val, len(LABELS), _config(epochs=1), Preprocessing(), tmp_path)


def test_deepspeed_config_follows_the_experiment():
    config = deepspeed_config(_config(zero_stage=2, precision="bf16", gradient_accumulation_steps=4), torch.device("cpu"))
    assert config["zero_optimization"]["stage"] == 2
    assert config["gradient_accumulation_steps"] == 4
    assert config["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}


def test_density_counter_sums_evidence():
    model = build_model("density_cnn", num_classes=3, width=4).eval()
    out = model(torch.randn(5, 3, 64, 64))
    assert out.shape == (5, 3) and bool((out >= 0).all())
    with pytest.raises(KeyError, match="unknown model"):
        build_model("nope", num_classes=1)
