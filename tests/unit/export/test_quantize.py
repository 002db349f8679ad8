"""int8 quantization: static QDQ with calibration, dynamic, the fp32 head, and the latency probe."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from doughflow.export.quantize import (
    ArrayCalibrationReader,
    head_nodes,
    median_latency_ms,
    quantize_dynamic_int8,
    quantize_static_qdq,
)
from doughflow.export.runtimes import onnx_predictor
from tests.support.release import fixed_model_onnx, normalised, pizzas


@pytest.fixture(scope="module")
def fp32():
    return fixed_model_onnx()


@pytest.fixture(scope="module")
def inputs():
    return normalised(pizzas(12)[0])


def test_calibration_reader_yields_every_image_once_then_none():
    data = np.zeros((70, 3, 8, 8), np.float32)
    reader = ArrayCalibrationReader(data, batch_size=32)
    sizes = []
    while (batch := reader.get_next()) is not None:
        sizes.append(len(batch["images"]))
    assert sizes == [32, 32, 6]
    reader.rewind()
    assert reader.get_next() is not None


def test_static_qdq_keeps_the_head_in_fp32(fp32, inputs, tmp_path):
    target = quantize_static_qdq(fp32, tmp_path / "s.onnx", inputs, keep_head_fp32=True)
    graph = onnx.load(str(target)).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    head = head_nodes(fp32)[0] if head_nodes(fp32) else None
    conv_inputs = [list(node.input) for node in graph.node if node.op_type == "Conv"]
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    assert head is not None
    assert not all(
        i in dequantized for i in conv_inputs[-1][:2]
    )  # last conv does not read int8 activations and weights
    assert onnx_predictor(target)(inputs).shape == (len(inputs), 5)


def test_static_needs_calibration_data(fp32, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        quantize_static_qdq(fp32, tmp_path / "s.onnx", np.zeros((0, 3, 64, 64), np.float32))


def test_dynamic_runs_and_is_smaller(fp32, inputs, tmp_path):
    target = quantize_dynamic_int8(fp32, tmp_path / "d.onnx")
    assert target.stat().st_size < fp32.stat().st_size
    assert np.isfinite(onnx_predictor(target)(inputs)).all()


def test_latency_probe_returns_a_positive_median(fp32, inputs):
    assert median_latency_ms(onnx_predictor(fp32), inputs[:1], repeats=3) > 0
