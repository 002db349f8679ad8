"""Post-training int8 quantization of the ONNX model with ONNX Runtime, static (QDQ) and dynamic.

int8 is not trusted here: on CPUs without VNNI, U8S8 kernels overflow (per-channel U8S8 took the counter
to 0.008 exact-count accuracy; per-tensor U8S8 to 0.90-0.94; U8U8 per-channel kept 0.979), so every int8 model goes through the same gates as fp32 before it ships.
The density head's error is summed over the whole map, so by default it stays fp32.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from onnxruntime.quantization import QuantType

log = logging.getLogger(__name__)


def _quant_type(name: str) -> QuantType:
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[name]


def _preprocessed(source: Path, work_dir: Path) -> Path:
    """ORT's recommended pre-pass (shape inference, graph optimisation) before quantizing."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = work_dir / f"{source.stem}.pre.onnx"
    quant_pre_process(str(source), str(target))
    return target


def head_nodes(path: Path) -> list[str]:
    """The last Conv node: the density head of a counter."""
    import onnx

    convs = [node.name for node in onnx.load(str(path)).graph.node if node.op_type == "Conv"]
    return convs[-1:]


class ArrayCalibrationReader:
    """Feeds calibration batches to quantize_static (ORT's CalibrationDataReader protocol)."""

    def __init__(self, inputs: np.ndarray, input_name: str = "images", batch_size: int = 32) -> None:
        self._batches = [
            {input_name: np.ascontiguousarray(inputs[i : i + batch_size], dtype=np.float32)}
            for i in range(0, len(inputs), batch_size)
        ]
        self._position = 0

    def get_next(self) -> dict | None:
        if self._position >= len(self._batches):
            return None
        batch = self._batches[self._position]
        self._position += 1
        return batch

    def rewind(self) -> None:
        self._position = 0


def quantize_static_qdq(
    source: Path,
    target: Path,
    calibration: np.ndarray,
    *,
    per_channel: bool = True,
    weight_type: str = "uint8",
    activation_type: str = "uint8",
    keep_head_fp32: bool = True,
) -> Path:
    """Static QDQ int8, activation ranges calibrated (min-max) on ``calibration`` (normalised NCHW)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    if len(calibration) == 0:
        raise ValueError("static quantization needs at least one calibration image")
    target.parent.mkdir(parents=True, exist_ok=True)
    prepared = _preprocessed(source, target.parent)

    class Reader(ArrayCalibrationReader, CalibrationDataReader):
        pass

    quantize_static(
        str(prepared),
        str(target),
        Reader(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        weight_type=_quant_type(weight_type),
        activation_type=_quant_type(activation_type),
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=head_nodes(prepared) if keep_head_fp32 else [],
    )
    prepared.unlink(missing_ok=True)
    return target


def quantize_dynamic_int8(
    source: Path, target: Path, *, weight_type: str = "uint8", keep_head_fp32: bool = True
) -> Path:
    """Dynamic int8: weights quantized offline, activation scales computed per batch at run time."""
    from onnxruntime.quantization import quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    prepared = _preprocessed(source, target.parent)
    quantize_dynamic(
        str(prepared),
        str(target),
        weight_type=_quant_type(weight_type),
        nodes_to_exclude=head_nodes(prepared) if keep_head_fp32 else [],
    )
    prepared.unlink(missing_ok=True)
    return target


def median_latency_ms(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, repeats: int) -> float:
    """Median wall time of one call after a warm-up call; the median resists a noisy shared machine."""
    predict(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))
