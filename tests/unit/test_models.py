"""Models are chosen by config; users register their own from a module the config names."""

from __future__ import annotations

import pytest
import torch

from doughflow.config import TrainConfig
from doughflow.training.models import MODEL_REGISTRY, build_model
from doughflow.training.trainer import make_model


@pytest.mark.parametrize("name", ["density_cnn", "resnet"])
def test_builtin_models_count_non_negatively(name):
    model = build_model(name, num_classes=5, width=8).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and bool((out >= 0).all())


def test_resnet_blocks_are_configurable():
    small = make_model(TrainConfig.model_validate({"model": {"name": "resnet", "width": 8, "options": {"blocks": [1, 1]}}}), 3)
    large = make_model(TrainConfig.model_validate({"model": {"name": "resnet", "width": 8}}), 3)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(large)


def test_custom_model_registers_through_import_module():
    cfg = TrainConfig.model_validate({"model": {"name": "test_nan_counter", "import_module": "tests.unit.nan_model"}})
    assert make_model(cfg, 5)(torch.zeros(1, 3, 8, 8)).shape == (1, 5)
    assert "test_nan_counter" in MODEL_REGISTRY


def test_unknown_model_names_the_field():
    with pytest.raises(KeyError, match="train.model.name.*import_module"):
        build_model("nope", num_classes=2)
