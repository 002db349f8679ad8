"""Evaluate stage: metrics per split and the worst test examples, from the trained torch model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from doughflow.config import ExperimentConfig, label_key
from doughflow.data.adapters import problem_of
from doughflow.data.split import SPLITS, SplitResult
from doughflow.evaluation.metrics import problem_metrics, worst_classified, worst_examples
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.training.data import load_split_for
from doughflow.training.inference import load_trained_model, predict
from doughflow.training.job import TrainResult


class QualityGateError(RuntimeError):
    """The model is below the configured accuracy bar on the test split."""


@dataclass
class EvaluationResult:
    metrics: dict
    metrics_path: str
    predictions_path: str
    worst: list[dict]


def evaluate(config: ExperimentConfig, paths: RunPaths, splits: SplitResult, trained: TrainResult) -> EvaluationResult:
    out = paths.stage("eval")
    problem = problem_of(config)
    model = load_trained_model(trained.model_path, len(config.labels), config.train, problem)
    preprocessing = preprocessing_for(config)
    metrics: dict = {}
    worst: list[dict] = []
    for name in SPLITS:
        split = load_split_for(config, splits.manifests[name], desc=f"decoding {name}")
        pred = predict(model, split.images, preprocessing) if len(split) else np.zeros((0, len(config.labels)))
        metrics[name] = problem_metrics(problem, pred, split.targets, config.label_names)
        if name == "test":
            columns: dict[str, list[str] | np.ndarray] = {"sample_id": split.ids}
            for k, label in enumerate(config.labels):  # column names from labels use their keys
                columns[f"true_{label_key(label)}"] = split.targets[:, k]
                columns[f"pred_{label_key(label)}"] = pred[:, k]
            pq.write_table(pa.table(columns), out / "test_predictions.parquet")
            pick = worst_classified if problem == "classification" else worst_examples
            worst = [asdict(w) for w in pick(split.ids, pred, split.targets, config.evaluate.worst_examples)]
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2))
    if problem == "classification":  # its bars (evaluate.min_metrics) are release gates, see tasks/release.py
        return EvaluationResult(metrics, str(metrics_path), str(out / "test_predictions.parquet"), worst)
    bar = config.evaluate.min_exact_count_accuracy
    achieved = metrics["test"].get("exact_count_accuracy", 0.0)
    if bar and achieved < bar:
        raise QualityGateError(
            f"test exact-count accuracy {achieved:.4f} is below the configured bar {bar} "
            f"(evaluate.min_exact_count_accuracy); see {metrics_path}"
        )
    return EvaluationResult(metrics, str(metrics_path), str(out / "test_predictions.parquet"), worst)
