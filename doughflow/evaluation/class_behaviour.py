"""Behavioural tests of a classifier: the invariances its training promised, on held-out images.

A classifier trained with rotations, flips or brightness changes as augmentations claims its class does
not depend on them; these properties check that claim on every format, like the counting properties do
(doughflow.evaluation.behaviour). Only the transforms ``train.augment`` enables are tested: the others
were never promised. The counting properties (empty pizza, one topping, re-layout, add a topping) need a
scene generator with known counts and do not apply; each one not run is recorded with its reason, so a
report never shows a property as silently absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from doughflow.config import AugmentConfig, PropertyTestConfig
from doughflow.evaluation.behaviour import INVARIANCES, KINDS, PropertyResult
from doughflow.evaluation.metrics import softmax

COUNT_ONLY = "count-specific: needs generated scenes with known counts, which a classification dataset has not"


def brightness(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda image: np.clip(image.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def transforms_for(augment: AugmentConfig) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, str]]:
    """(property -> transform) for what the augmentations promise, and (property -> reason) for the rest.
    Brightness is tested at half the trained range: well inside what the model saw."""
    enabled = {
        "rot90": augment.rot90,
        "rot180": augment.rot90,
        "rot270": augment.rot90,
        "flip_horizontal": augment.hflip,
        "flip_vertical": augment.vflip,
    }
    chosen, skipped = {}, {}
    for name, transform in INVARIANCES.items():
        option = {"flip_horizontal": "hflip", "flip_vertical": "vflip"}.get(name, "rot90")
        if enabled[name]:
            chosen[f"invariance_{name}"] = transform
        else:
            skipped[f"invariance_{name}"] = (
                f"train.augment.{option} is off: the model was not trained to be invariant to it"
            )
    if augment.brightness > 0:
        step = augment.brightness / 2
        chosen["invariance_brightness_up"] = brightness(1 + step)
        chosen["invariance_brightness_down"] = brightness(1 - step)
    else:
        skipped["invariance_brightness"] = (
            "train.augment.brightness is 0: the model was not trained to be invariant to it"
        )
    for prop, kind in KINDS.items():
        if kind != "invariance" or prop == "invariance_relayout":
            skipped[prop] = COUNT_ONLY
    return chosen, skipped


@dataclass
class ClassCase:
    prop: str
    sample_id: str
    true_index: int
    images: list[np.ndarray]


def classification_cases(
    ids: list[str], images: np.ndarray, targets: np.ndarray, augment: AugmentConfig, cfg: PropertyTestConfig
) -> tuple[list[ClassCase], dict[str, str]]:
    """``cfg.examples`` held-out images (a seeded draw) under each promised transform, and the skipped
    properties with their reasons."""
    transforms, skipped = transforms_for(augment)
    if len(ids) == 0:
        return [], {**skipped, **{prop: "no held-out images to test on" for prop in transforms}}
    chosen = np.random.default_rng(cfg.seed).permutation(len(ids))[: cfg.examples]
    cases = []
    for prop, transform in transforms.items():
        for i in chosen:
            image = images[i]
            cases.append(
                ClassCase(prop, ids[i], int(np.argmax(targets[i])), [image, np.ascontiguousarray(transform(image))])
            )
    return cases, skipped


def run_classification_properties(
    cases: list[ClassCase],
    predict_images: Callable[[np.ndarray], np.ndarray],
    fmt: str,
    labels: list[str],
    cfg: PropertyTestConfig,
) -> list[PropertyResult]:
    """A case fails when the transform changes the predicted class; the measure is the largest change
    of any class probability."""
    if not cases:
        return []
    logits = predict_images(np.stack([image for case in cases for image in case.images]))
    probs = softmax(np.asarray(logits, np.float64))
    measure = "max |class probability change|; fails when the predicted class changes"
    results: dict[str, PropertyResult] = {}
    for n, case in enumerate(cases):
        before, after = probs[2 * n], probs[2 * n + 1]
        value = float(np.abs(after - before).max())
        failed = int(before.argmax()) != int(after.argmax())
        result = results.setdefault(
            case.prop,
            PropertyResult(fmt, case.prop, "invariance", 0, 0, 0.0, cfg.max_failure_rate, float("-inf"), measure),
        )
        result.examples += 1
        result.failures += int(failed)
        if value > result.worst_value:
            result.worst_value = value
            result.worst_example = {
                "sample_id": case.sample_id,
                "true": labels[case.true_index],
                "predicted": [labels[int(before.argmax())], labels[int(after.argmax())]],
                "probabilities": [[round(float(v), 3) for v in p] for p in (before, after)],
            }
    for result in results.values():
        result.failure_rate = result.failures / result.examples
        result.passed = result.failure_rate <= result.max_failure_rate
    return list(results.values())
