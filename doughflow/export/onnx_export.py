"""ONNX export with a dynamic batch, and a parity check against the torch model.

A converted model that disagrees with the one we evaluated would ship untested behaviour, so the
check runs on held-out data and a failure stops the run with the worst differences named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


class ParityError(RuntimeError):
    """The exported model disagrees with torch beyond the configured tolerance."""


@dataclass
class ParityReport:
    samples: int
    max_abs_diff: float
    mean_abs_diff: float
    rounded_agreement: float
    atol: float
    min_rounded_agreement: float
    passed: bool
    worst: list[dict] = field(default_factory=list)
    agreement: str = "rounded counts"  # what rounded_agreement compares: rounded counts, or argmax class


def export_onnx(model: torch.nn.Module, path: Path, image_size: int, opset: int, output_name: str = "counts") -> Path:
    """One self-contained .onnx file (no external data) taking images [batch, 3, H, W] and returning
    ``output_name`` (counts, or logits for classification) [batch, K]."""
    model = model.eval().cpu()
    example = torch.zeros(2, 3, image_size, image_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["images"],
        output_names=[output_name],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=65536)}},
        opset_version=opset,
        external_data=False,
        verbose=False,
    )
    import onnx

    onnx.checker.check_model(str(path))
    return path


def onnx_predict(path: Path, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    output_name = session.get_outputs()[0].name
    outputs = [
        session.run([output_name], {"images": inputs[i : i + batch_size]})[0] for i in range(0, len(inputs), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def compare_outputs(
    reference: np.ndarray,
    candidate: np.ndarray,
    ids: list[str],
    atol: float,
    min_rounded_agreement: float,
    worst_k: int = 5,
    problem: str = "count",
) -> ParityReport:
    """Max |diff| of the raw outputs, and the share of samples whose decision agrees: all rounded
    counts for counting, the argmax class for classification (logits)."""
    diff = np.abs(reference - candidate)
    per_sample = diff.max(axis=1) if diff.size else np.zeros(0)
    if problem == "classification":
        kind = "argmax class"
        agreement = float((reference.argmax(axis=1) == candidate.argmax(axis=1)).mean()) if len(reference) else 1.0
    else:
        kind = "rounded counts"
        ref_round = np.rint(np.clip(reference, 0, None))
        cand_round = np.rint(np.clip(candidate, 0, None))
        agreement = float((ref_round == cand_round).all(axis=1).mean()) if len(reference) else 1.0
    order = np.argsort(-per_sample)[:worst_k]
    worst = [
        {
            "sample_id": ids[i],
            "max_abs_diff": float(per_sample[i]),
            "torch": [round(float(v), 5) for v in reference[i]],
            "export": [round(float(v), 5) for v in candidate[i]],
        }
        for i in order
    ]
    max_diff = float(diff.max()) if diff.size else 0.0
    passed = max_diff <= atol and agreement >= min_rounded_agreement
    return ParityReport(
        len(reference),
        max_diff,
        float(diff.mean()) if diff.size else 0.0,
        agreement,
        atol,
        min_rounded_agreement,
        passed,
        worst,
        kind,
    )


def check_parity(report: ParityReport, fmt: str) -> None:
    if not report.passed:
        raise ParityError(
            f"{fmt} parity failed on {report.samples} samples: max |diff| {report.max_abs_diff:.3g} "
            f"(atol {report.atol}), rounded agreement {report.rounded_agreement:.4f} "
            f"(need {report.min_rounded_agreement}); worst: {report.worst[:3]}"
        )
