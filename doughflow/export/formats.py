"""Build every deploy format from the fp32 ONNX/torch model and measure each against torch.

Each format gets the same treatment: held-out parity against torch (measured where its runtime can
run, estimated where it cannot, skipped with the reason otherwise), accuracy on the same images,
file size and batch-1 latency. Deciding what ships is not done here but in evaluation.gates.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from doughflow.config import ExperimentConfig, FormatTolerance
from doughflow.data.adapters import problem_of
from doughflow.evaluation.metrics import problem_metrics
from doughflow.export import coreml_export, quantize
from doughflow.export.onnx_export import ParityReport, compare_outputs
from doughflow.export.runtimes import (
    Predictor,
    RuntimeUnavailable,
    coreml_can_predict,
    coreml_predictor,
    fp16_emulated_predictor,
    onnx_predictor,
    torch_predictor,
)
from doughflow.paths import remove_tree

log = logging.getLogger(__name__)

PRIMARY_FORMATS = ("torch", "onnx", "coreml_fp32")


@dataclass
class FormatResult:
    """One deploy format: where it is, how big and fast, and how it compares with torch."""

    name: str
    bundle_name: str
    path: str | None
    primary: bool
    size_bytes: int = 0
    latency_ms: float | None = None
    metrics: dict = field(default_factory=dict)
    parity: ParityReport | None = None
    parity_method: str = ""  # how parity was obtained: measured, estimated, or skipped and why
    spec_problems: list[str] | None = None  # None: no spec check for this format
    error: str | None = None  # conversion failed: the format does not exist


@dataclass
class DeployResult:
    formats: list[FormatResult]
    parity_samples: int
    report_path: str
    sample_path: str = ""  # one held-out image and torch's counts for it, for bundle verification

    def get(self, name: str) -> FormatResult | None:
        return next((f for f in self.formats if f.name == name), None)


def path_size(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _measure(
    result: FormatResult,
    predictor: Predictor,
    inputs: np.ndarray,
    reference: np.ndarray,
    targets: np.ndarray,
    ids: list[str],
    labels: list[str],
    tolerance: FormatTolerance,
    method: str,
    latency_input: np.ndarray | None,
    repeats: int,
    problem: str = "count",
) -> None:
    candidate = predictor(inputs)
    result.parity = compare_outputs(
        reference, candidate, ids, tolerance.atol, tolerance.min_rounded_agreement, problem=problem
    )
    result.parity_method = method
    result.metrics = problem_metrics(problem, candidate, targets, labels)
    for detail in ("per_topping", "per_class", "confusion_matrix"):
        result.metrics.pop(detail, None)
    if latency_input is not None:
        result.latency_ms = quantize.median_latency_ms(predictor, latency_input, repeats)


def build_formats(
    config: ExperimentConfig,
    model: torch.nn.Module,
    onnx_path: Path,
    out_dir: Path,
    *,
    inputs: np.ndarray,
    targets: np.ndarray,
    ids: list[str],
    calibration: np.ndarray,
    preprocessing: dict,
) -> list[FormatResult]:
    """Convert and measure. ``inputs`` are normalised held-out images (NCHW float32), ``calibration``
    normalised training images. A conversion that raises becomes a format with ``error`` set."""
    release, labels = config.release, config.label_names
    problem = problem_of(config)
    size = config.data.image_size
    quant = release.quantization
    latency_input = inputs[: quant.latency_batch] if len(inputs) else None
    torch_run = torch_predictor(model)
    reference = torch_run(inputs)
    fp32_tol = FormatTolerance(
        atol=config.export.parity_atol, min_rounded_agreement=config.export.parity_min_rounded_agreement
    )

    torch_result = FormatResult("torch", "model.pt", None, primary=True)
    _measure(
        torch_result,
        lambda x: reference if x is inputs else torch_run(x),
        inputs,
        reference,
        targets,
        ids,
        labels,
        fp32_tol,
        "reference",
        latency_input,
        quant.latency_repeats,
        problem=problem,
    )
    results = [torch_result]

    onnx_result = FormatResult("onnx", "model.onnx", str(onnx_path), primary=True, size_bytes=path_size(onnx_path))
    _measure(
        onnx_result,
        onnx_predictor(onnx_path),
        inputs,
        reference,
        targets,
        ids,
        labels,
        fp32_tol,
        "measured with onnxruntime (CPU)",
        latency_input,
        quant.latency_repeats,
        problem=problem,
    )
    results.append(onnx_result)

    can_predict, why_not = coreml_can_predict()
    coreml_variants = [("fp32", "coreml_fp32", "model.mlpackage")] if release.coreml.enabled else []
    if release.coreml.enabled and release.coreml.fp16:
        coreml_variants.append(("fp16", "coreml_fp16", "model_fp16.mlpackage"))
    for precision, name, bundle_name in coreml_variants:
        target = out_dir / bundle_name
        result = FormatResult(name, bundle_name, str(target), primary=name in PRIMARY_FORMATS)
        results.append(result)
        try:
            if target.exists() or target.is_symlink():
                remove_tree(out_dir, target)
            coreml_export.export_coreml(
                model,
                target,
                image_size=size,
                labels=config.labels,
                preprocessing=preprocessing,
                precision=precision,
                max_batch=release.coreml.max_batch,
                deployment_target=release.coreml.deployment_target,
            )
        except Exception as error:  # noqa: BLE001 - a failed conversion is a gate finding, not a crash
            log.exception("CoreML %s conversion failed", precision)
            result.error, result.path = f"{type(error).__name__}: {error}", None
            continue
        result.size_bytes = path_size(target)
        result.spec_problems = coreml_export.inspect_coreml(
            target,
            image_size=size,
            labels=config.labels,
            precision=precision,
            output_name=preprocessing.get("output_name", "counts"),
        )
        tolerance = getattr(release.tolerances, name)
        if can_predict:
            try:
                _measure(
                    result,
                    coreml_predictor(target),
                    inputs,
                    reference,
                    targets,
                    ids,
                    labels,
                    tolerance,
                    "measured with CoreML",
                    latency_input,
                    quant.latency_repeats,
                    problem=problem,
                )
                continue
            except RuntimeUnavailable as error:  # pragma: no cover - macOS without a usable runtime
                why_not = str(error)
        if precision == "fp16":
            _measure(
                result,
                fp16_emulated_predictor(model),
                inputs,
                reference,
                targets,
                ids,
                labels,
                tolerance,
                f"estimated: torch with weights and activations rounded through fp16 ({why_not})",
                None,
                1,
                problem=problem,
            )
        else:
            result.parity_method = f"skipped: {why_not}"

    int8_variants = []
    if quant.static:
        int8_variants.append(("onnx_int8_static", "model_int8_static.onnx"))
    if quant.dynamic:
        int8_variants.append(("onnx_int8_dynamic", "model_int8_dynamic.onnx"))
    for name, bundle_name in int8_variants:
        target = out_dir / bundle_name
        result = FormatResult(name, bundle_name, str(target), primary=False)
        results.append(result)
        try:
            if name == "onnx_int8_static":
                quantize.quantize_static_qdq(
                    onnx_path,
                    target,
                    calibration,
                    per_channel=quant.per_channel,
                    weight_type=quant.weight_type,
                    activation_type=quant.activation_type,
                    keep_head_fp32=quant.keep_head_fp32,
                )
            else:
                quantize.quantize_dynamic_int8(
                    onnx_path, target, weight_type=quant.weight_type, keep_head_fp32=quant.keep_head_fp32
                )
        except Exception as error:  # noqa: BLE001
            log.exception("%s quantization failed", name)
            result.error, result.path = f"{type(error).__name__}: {error}", None
            continue
        result.size_bytes = path_size(target)
        _measure(
            result,
            onnx_predictor(target),
            inputs,
            reference,
            targets,
            ids,
            labels,
            getattr(release.tolerances, name),
            "measured with onnxruntime (CPU)",
            latency_input,
            quant.latency_repeats,
            problem=problem,
        )
    return results


def formats_to_json(results: list[FormatResult]) -> list[dict]:
    return [asdict(result) for result in results]


def predictor_for(result: FormatResult, model: torch.nn.Module) -> tuple[Predictor | None, str]:
    """The predictor behavioural tests use for a format, and how it runs (or why it cannot)."""
    if result.error:
        return None, f"not built: {result.error}"
    if result.name == "torch":
        return torch_predictor(model), "torch fp32"
    if result.path is None:
        return None, "not built: no file"
    if result.name.startswith("onnx"):
        return onnx_predictor(result.path), "onnxruntime (CPU)"
    can_predict, why_not = coreml_can_predict()
    if can_predict:
        return coreml_predictor(result.path), "CoreML"
    if result.name == "coreml_fp16":
        return fp16_emulated_predictor(model), f"estimated with fp16-rounded torch ({why_not})"
    return None, f"skipped: {why_not}"
