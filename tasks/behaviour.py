"""Behavioural-tests stage: the same generated pizzas through the torch model and every format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from doughflow.config import ExperimentConfig
from doughflow.evaluation.behaviour import PropertyResult, generate_cases, results_to_json, run_properties
from doughflow.export.deploy import DeployResult, predictor_for
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.training.trainer import TrainResult, load_trained_model
from tasks.common import compute_task


@dataclass
class BehaviourResult:
    results: dict[str, list[PropertyResult]] = field(default_factory=dict)  # format -> properties
    skipped: dict[str, str] = field(default_factory=dict)  # format -> why it was not tested
    runtimes: dict[str, str] = field(default_factory=dict)  # format -> what ran it
    cases: int = 0
    report_path: str = ""


def _max_count(config: ExperimentConfig) -> int:
    """Largest count the training data holds: properties stay inside the training range."""
    return config.data.source.generator.max_count if config.data.source.url is None else config.data.max_count


def behaviour_tests(config: ExperimentConfig, paths: RunPaths, trained: TrainResult, formats: DeployResult) -> BehaviourResult:
    cfg = config.release.properties
    outcome = BehaviourResult()
    if cfg.enabled:
        model = load_trained_model(trained.model_path, len(config.labels), config.train)
        preprocessing = preprocessing_for(config)
        cases = generate_cases(config.labels, _max_count(config), config.data.image_size, cfg)
        outcome.cases = len(cases)
        for fmt in formats.formats:
            predictor, how = predictor_for(fmt, model)
            if predictor is None:
                outcome.skipped[fmt.name] = how
                continue
            outcome.runtimes[fmt.name] = how
            outcome.results[fmt.name] = run_properties(
                cases, lambda images, p=predictor: p(preprocessing.to_tensor(images).numpy()), fmt.name, config.labels, cfg)
    path = paths.stage("export") / "behaviour.json"
    path.write_text(json.dumps({"cases": outcome.cases, "skipped": outcome.skipped, "runtimes": outcome.runtimes,
                                "results": {k: results_to_json(v) for k, v in outcome.results.items()}}, indent=2))
    outcome.report_path = str(path)
    return outcome


behaviour_task = compute_task(name="behaviour-tests")(behaviour_tests)
