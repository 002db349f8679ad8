"""Behavioural-tests stage: the same generated pizzas (counting) or held-out images under the promised
invariances (classification) through the torch model and every format."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from doughflow.config import ExperimentConfig, PropertyTestConfig
from doughflow.data.adapters import problem_of
from doughflow.data.split import SplitResult
from doughflow.evaluation.behaviour import PropertyResult, generate_cases, results_to_json, run_properties
from doughflow.evaluation.class_behaviour import ClassCase, classification_cases, run_classification_properties
from doughflow.export.formats import DeployResult, predictor_for
from doughflow.export.runtimes import Predictor
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.training.data import load_split_for
from doughflow.training.inference import load_trained_model
from doughflow.training.job import TrainResult


@dataclass
class BehaviourResult:
    results: dict[str, list[PropertyResult]] = field(default_factory=dict)  # format -> properties
    skipped: dict[str, str] = field(default_factory=dict)  # format -> why it was not tested
    runtimes: dict[str, str] = field(default_factory=dict)  # format -> what ran it
    cases: int = 0
    report_path: str = ""
    skipped_properties: dict[str, str] = field(default_factory=dict)  # property -> why it was not run


def _max_count(config: ExperimentConfig) -> int:
    """Largest count the training data holds: properties stay inside the training range."""
    return config.data.source.generator.max_per_topping if config.data.source.url is None else config.data.max_count


def _classification_cases(
    config: ExperimentConfig, splits: SplitResult | None, outcome: BehaviourResult
) -> list[ClassCase]:
    if splits is None:
        outcome.skipped_properties["all"] = "no splits given: classification properties run on held-out images"
        return []
    test = load_split_for(config, splits.manifests["test"], desc="decoding test for properties")
    cases, outcome.skipped_properties = classification_cases(
        test.ids, test.images, test.targets, config.train.augment, config.release.properties
    )
    return cases


def behaviour_tests(
    config: ExperimentConfig,
    paths: RunPaths,
    trained: TrainResult,
    formats: DeployResult,
    splits: SplitResult | None = None,
) -> BehaviourResult:
    cfg = config.release.properties
    outcome = BehaviourResult()
    problem = problem_of(config)
    if cfg.enabled:
        model = load_trained_model(trained.model_path, len(config.labels), config.train, problem)
        preprocessing = preprocessing_for(config)
        # the properties of the problem with its cases bound: (predict, format, labels, settings) -> results
        run: Callable[[Predictor, str, list[str], PropertyTestConfig], list[PropertyResult]]
        if problem == "classification":
            class_cases = _classification_cases(config, splits, outcome)
            outcome.cases, run = len(class_cases), partial(run_classification_properties, class_cases)
        else:
            cases = generate_cases(config.label_names, _max_count(config), config.data.image_size, cfg)
            outcome.cases, run = len(cases), partial(run_properties, cases)
        for fmt in formats.formats:
            predictor, how = predictor_for(fmt, model)
            if predictor is None:
                outcome.skipped[fmt.name] = how
                continue
            outcome.runtimes[fmt.name] = how

            def predict_images(images: np.ndarray, predictor: Predictor = predictor) -> np.ndarray:
                return predictor(preprocessing.to_tensor(images).numpy())

            outcome.results[fmt.name] = run(predict_images, fmt.name, config.label_names, cfg)
    path = paths.stage("export") / "behaviour.json"
    path.write_text(
        json.dumps(
            {
                "cases": outcome.cases,
                "skipped": outcome.skipped,
                "runtimes": outcome.runtimes,
                "skipped_properties": outcome.skipped_properties,
                "results": {k: results_to_json(v) for k, v in outcome.results.items()},
            },
            indent=2,
        )
    )
    outcome.report_path = str(path)
    return outcome
