"""Verify a bundle as its consumer would: files intact, release approved, every model loads and predicts.

Hashes prove the bytes are the ones the pipeline wrote; a prediction on the bundled sample image,
compared with the torch output recorded at packaging time, proves each model still runs and agrees.
Preprocessing is rebuilt from ``preprocessing.json`` alone, so that file is checked too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from doughflow.packaging.bundle import MANIFEST, verify_bundle

SAMPLE = "verify_sample.npz"


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # the release was rejected: the bundle is intact but not for use
    review: dict | None = None  # the human review approval (flows.review), apart from the automated release

    @property
    def ok(self) -> bool:
        return not self.problems and not self.rejected


def preprocess_from_json(pixels_nhwc: np.ndarray, spec: dict) -> np.ndarray:
    """uint8 NHWC -> model input, using only what preprocessing.json says."""
    x = pixels_nhwc.astype(np.float32) * float(spec["scale"])
    mean = np.asarray(spec["mean"], np.float32).reshape(1, 1, 1, -1)
    std = np.asarray(spec["std"], np.float32).reshape(1, 1, 1, -1)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if spec.get("layout", "NCHW") == "NCHW" else x


def _check_onnx(path: Path, inputs: np.ndarray, expected: np.ndarray, atol: float) -> str | None:
    from doughflow.export.runtimes import onnx_predictor

    output = onnx_predictor(path)(inputs)
    if output.shape != expected.shape:
        return f"output shape {output.shape} != expected {expected.shape}"
    if not np.isfinite(output).all():
        return "output has non-finite values"
    diff = float(np.abs(output - expected).max())
    if diff > atol:
        return f"prediction on the bundled sample differs from torch by {diff:.3g} (atol {atol})"
    return None


def _check_coreml(
    path: Path,
    inputs: np.ndarray,
    expected: np.ndarray,
    atol: float,
    labels: list[str | int],
    image_size: int,
    precision: str,
    output_name: str = "counts",
) -> tuple[str | None, str]:
    from doughflow.export.coreml_export import inspect_coreml
    from doughflow.export.runtimes import coreml_can_predict, coreml_predictor

    problems = inspect_coreml(path, image_size=image_size, labels=labels, precision=precision, output_name=output_name)
    if problems:
        return "; ".join(problems), ""
    can, why_not = coreml_can_predict()
    if not can:
        return None, f"spec checked; prediction skipped ({why_not})"
    diff = float(np.abs(coreml_predictor(path)(inputs) - expected).max())
    if diff > atol:
        return f"prediction on the bundled sample differs from torch by {diff:.3g} (atol {atol})", ""
    return None, "spec checked and predicted"


def verify_bundle_models(bundle_dir: Path) -> VerifyReport:
    bundle_dir = Path(bundle_dir)
    report = VerifyReport(problems=verify_bundle(bundle_dir))
    if report.problems:
        return report  # never load models out of a bundle whose bytes are not the ones written
    report.checked.append(
        f"{len(json.loads((bundle_dir / MANIFEST).read_text())['files'])} files match manifest hashes"
    )
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    report.review = manifest.get("review")
    release = manifest.get("release")
    if release is None:
        report.problems.append("manifest has no release decision: bundle was not gated")
    elif not isinstance(release, dict):
        report.problems.append("manifest release section is not a mapping")
    elif release.get("status") != "released":
        report.rejected = [f"release {release.get('status')}: {reason}" for reason in release.get("reasons", [])] or [
            f"release status is {release.get('status')!r}"
        ]
    formats = manifest.get("formats", {})
    if not formats:
        report.problems.append("manifest lists no model formats")
        return report
    try:
        sample = np.load(bundle_dir / SAMPLE)
        spec = json.loads((bundle_dir / "preprocessing.json").read_text())
        labels = json.loads((bundle_dir / "labels.json").read_text())["labels"]
        inputs = preprocess_from_json(sample["pixels"], spec)
        expected = sample["expected"]
    except (OSError, KeyError, ValueError) as error:
        report.problems.append(f"cannot read the verification sample or preprocessing/labels: {error}")
        return report
    for name, entry in formats.items():
        path = bundle_dir / entry["file"]
        try:
            if entry["runtime"] == "onnxruntime":
                problem, note = _check_onnx(path, inputs, expected, entry["atol"]), "loaded and predicted"
            elif entry["runtime"] == "coreml":
                problem, note = _check_coreml(
                    path,
                    inputs,
                    expected,
                    entry["atol"],
                    labels,
                    spec["image_size"][0],
                    entry.get("precision", "fp32"),
                    spec.get("output_name", "counts"),
                )
            else:
                problem, note = f"unknown runtime {entry['runtime']!r}", ""
        except Exception as error:  # noqa: BLE001 - any failure to load or run is the finding
            problem, note = f"cannot load or run: {type(error).__name__}: {error}", ""
        if problem:
            report.problems.append(f"{entry['file']} ({name}): {problem}")
        else:
            report.checked.append(f"{entry['file']} ({name}): {note}")
    return report
