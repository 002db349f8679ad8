"""Export stage: ONNX with dynamic batch, then parity against torch on the test split (recorded;
the release stage decides)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import problem_of
from doughflow.data.split import SplitResult
from doughflow.export.onnx_export import ParityReport, compare_outputs, export_onnx, onnx_predict
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.training.data import load_split_for
from doughflow.training.inference import load_trained_model, predict
from doughflow.training.job import TrainResult


@dataclass
class ExportResult:
    onnx_path: str
    parity: ParityReport


def export(config: ExperimentConfig, paths: RunPaths, splits: SplitResult, trained: TrainResult) -> ExportResult:
    problem = problem_of(config)
    model = load_trained_model(trained.model_path, len(config.labels), config.train, problem)
    preprocessing = preprocessing_for(config)
    onnx_path = export_onnx(
        model,
        paths.stage("export") / "model.onnx",
        config.data.image_size,
        config.export.opset,
        output_name=preprocessing.output_name,
    )
    test = load_split_for(config, splits.manifests["test"], desc="decoding test")
    n = min(len(test), config.export.parity_max_samples)
    reference = predict(model, test.images[:n], preprocessing)
    candidate = onnx_predict(onnx_path, preprocessing.to_tensor(test.images[:n]).numpy())
    report = compare_outputs(
        reference,
        candidate,
        test.ids[:n],
        config.export.parity_atol,
        config.export.parity_min_rounded_agreement,
        problem=problem,
    )
    (paths.stage("export") / "parity_onnx.json").write_text(json.dumps(asdict(report), indent=2))
    # No raise here: the release stage gates every format together, and a failed gate still writes
    # a bundle marked rejected, so the evidence can be inspected (see doughflow/release/gates.py).
    return ExportResult(str(onnx_path), report)
