"""Deploy-formats stage: CoreML (fp32, fp16) and int8 ONNX (static, dynamic) beside the fp32 ONNX,
each measured against torch on held-out images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for, problem_of
from doughflow.data.split import SplitResult
from doughflow.export.formats import DeployResult, build_formats, formats_to_json
from doughflow.export.runtimes import torch_predictor
from doughflow.preprocessing import preprocessing_for
from doughflow.runs import RunPaths
from doughflow.stages.export import ExportResult
from doughflow.training.data import load_split, load_split_for
from doughflow.training.inference import load_trained_model
from doughflow.training.job import TrainResult


def calibration_images(config: ExperimentConfig, splits: SplitResult, count: int) -> np.ndarray:
    """The first ``count`` training images, decoding only as many shards as needed."""
    data = config.data
    chunks, have = [], 0
    for path in splits.manifests["train"].paths():
        part = load_split(
            [path],
            id_column=data.id_column,
            image_column=data.image_column,
            target_columns=adapter_for(config).target_columns,
            preprocessing=preprocessing_for(config),
            desc="decoding calibration",
        )
        chunks.append(part.images[: count - have])
        have += len(chunks[-1])
        if have >= count:
            break
    size = config.data.image_size
    return np.concatenate(chunks) if chunks else np.zeros((0, size, size, 3), np.uint8)


def convert_formats(
    config: ExperimentConfig, paths: RunPaths, splits: SplitResult, trained: TrainResult, exported: ExportResult
) -> DeployResult:
    out = paths.stage("export")
    model = load_trained_model(trained.model_path, len(config.labels), config.train, problem_of(config))
    preprocessing = preprocessing_for(config)
    test = load_split_for(config, splits.manifests["test"], desc="decoding test")
    n = min(len(test), config.export.parity_max_samples)
    inputs = preprocessing.to_tensor(test.images[:n]).numpy()
    calibration = preprocessing.to_tensor(
        calibration_images(config, splits, config.release.quantization.calibration_samples)
    ).numpy()
    results = build_formats(
        config,
        model,
        Path(exported.onnx_path),
        out,
        inputs=inputs,
        targets=test.targets[:n],
        ids=test.ids[:n],
        calibration=calibration,
        preprocessing=preprocessing.to_json(),
    )
    report_path = out / "formats.json"
    report_path.write_text(json.dumps(formats_to_json(results), indent=2, default=str))
    sample_path = out / "verify_sample.npz"
    np.savez(sample_path, pixels=test.images[:1], expected=torch_predictor(model)(inputs[:1]))
    return DeployResult(results, n, str(report_path), str(sample_path))
