"""Classification properties: only the invariances the augmentations promise run; the rest are recorded."""

from __future__ import annotations

import numpy as np

from doughflow.config import AugmentConfig, PropertyTestConfig
from doughflow.evaluation.behaviour import KINDS
from doughflow.evaluation.class_behaviour import (
    COUNT_ONLY,
    classification_cases,
    run_classification_properties,
    transforms_for,
)


def test_transforms_follow_the_augment_config_and_count_properties_are_skipped_with_a_reason():
    chosen, skipped = transforms_for(AugmentConfig(rot90=False, hflip=True, vflip=False, brightness=0.2))
    assert set(chosen) == {"invariance_flip_horizontal", "invariance_brightness_up", "invariance_brightness_down"}
    assert "train.augment.rot90 is off" in skipped["invariance_rot90"]
    assert "train.augment.vflip is off" in skipped["invariance_flip_vertical"]
    for prop in ("empty_pizza", "single_topping", "invariance_relayout", "add_one_topping"):
        assert skipped[prop] == COUNT_ONLY
    assert set(chosen) | set(skipped) >= set(KINDS)  # every counting property is either run or explained
    brighter = chosen["invariance_brightness_up"](np.full((2, 2, 3), 100, np.uint8))
    assert brighter.dtype == np.uint8 and int(brighter[0, 0, 0]) == 110


def _images(n: int = 6) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    images[:, :, :4] = 0  # left half dark: a horizontal flip moves the bright half
    return [f"s{i}" for i in range(n)], images, np.eye(2, dtype=np.float32)[np.arange(n) % 2]


def test_an_invariant_model_passes_and_a_position_sensitive_one_fails():
    ids, images, targets = _images()
    cfg = PropertyTestConfig(examples=4, max_failure_rate=0.0)
    cases, _ = classification_cases(ids, images, targets, AugmentConfig(rot90=False, hflip=True, brightness=0.0), cfg)
    assert len(cases) == 4 and {c.prop for c in cases} == {"invariance_flip_horizontal"}

    def mean_brightness(x: np.ndarray) -> np.ndarray:  # invariant to flips
        m = x.reshape(len(x), -1).mean(axis=1)
        return np.stack([m, np.full_like(m, 0.5)], axis=1)

    def left_vs_right(x: np.ndarray) -> np.ndarray:  # uint8 NHWC here; decides by which half is brighter
        return np.stack([x[:, :, :4].mean(axis=(1, 2, 3)), x[:, :, 4:].mean(axis=(1, 2, 3))], axis=1)

    good = run_classification_properties(cases, mean_brightness, "torch", ["a", "b"], cfg)
    bad = run_classification_properties(cases, left_vs_right, "onnx", ["a", "b"], cfg)
    assert good[0].passed and good[0].failures == 0
    assert not bad[0].passed and bad[0].failures == 4 and bad[0].worst_example["predicted"] == ["b", "a"]


def test_no_images_means_every_property_is_skipped_with_a_reason():
    cases, skipped = classification_cases(
        [], np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 2)), AugmentConfig(), PropertyTestConfig()
    )
    assert cases == [] and skipped["invariance_rot90"] == "no held-out images to test on"
