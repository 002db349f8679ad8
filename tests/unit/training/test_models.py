"""Models are chosen by config; users register their own from a module the config names."""

from __future__ import annotations

import pytest
import torch

from doughflow.config import TrainConfig
from doughflow.training.inference import make_model
from doughflow.training.models import MODEL_REGISTRY, build_model


@pytest.mark.parametrize("name", ["density_cnn", "resnet"])
def test_builtin_models_count_non_negatively(name):
    model = build_model(name, num_classes=5, width=8).eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and bool((out >= 0).all())


def test_resnet_blocks_are_configurable():
    small = make_model(
        TrainConfig.model_validate({"model": {"name": "resnet", "width": 8, "options": {"blocks": [1, 1]}}}), 3
    )
    large = make_model(TrainConfig.model_validate({"model": {"name": "resnet", "width": 8}}), 3)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(small) < count(large)


def test_custom_model_registers_through_import_module():
    cfg = TrainConfig.model_validate(
        {"model": {"name": "test_nan_counter", "import_module": "tests.support.nan_model"}}
    )
    assert make_model(cfg, 5)(torch.zeros(1, 3, 8, 8)).shape == (1, 5)
    assert "test_nan_counter" in MODEL_REGISTRY


def test_unknown_model_names_the_field():
    with pytest.raises(KeyError, match="train.model.name.*import_module"):
        build_model("nope", num_classes=2)


@pytest.mark.parametrize("name", ["density_cnn", "resnet"])
def test_classification_gets_a_logits_head(name):
    torch.manual_seed(0)  # the sign of a fresh model's outputs depends on its initial weights
    model = build_model(
        name, num_classes=4, problem="classification", width=8, **({"blocks": [1, 1]} if name == "resnet" else {})
    )
    out = model.eval()(torch.randn(16, 3, 32, 32))
    assert out.shape == (16, 4) and bool((out < 0).any())  # logits, not non-negative counts
    assert model.head == "logits" and not hasattr(model, "density")


def test_count_models_are_unchanged_by_the_head_option():
    """Same seed, same weights as before the head option existed: the pizza runs reproduce."""
    torch.manual_seed(0)
    default = build_model("density_cnn", num_classes=5, width=8)
    torch.manual_seed(0)
    explicit = build_model("density_cnn", num_classes=5, problem="count", width=8, head="density")
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), explicit.state_dict().values()))
    with pytest.raises(ValueError, match="head must be one of"):
        build_model("density_cnn", num_classes=5, head="boxes")


def test_a_factory_without_head_is_trusted_to_return_logits():
    """Custom factories that do not take ``head`` are called as registered (README: they must output logits)."""
    cfg = TrainConfig.model_validate(
        {"model": {"name": "test_nan_counter", "import_module": "tests.support.nan_model"}}
    )
    assert make_model(cfg, 3, problem="classification")(torch.zeros(2, 3, 8, 8)).shape == (2, 3)
