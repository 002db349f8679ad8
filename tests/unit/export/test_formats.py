"""Conversion of every deploy format and its parity gate, on a fixed-weight model and real pizzas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doughflow.config import FormatTolerance
from doughflow.export.formats import build_formats
from doughflow.export.onnx_export import compare_outputs, export_onnx
from doughflow.export.runtimes import coreml_can_predict, fp16_emulated_predictor, onnx_predictor, torch_predictor
from doughflow.preprocessing import Preprocessing
from doughflow.release.gates import FAILED, PASSED, SKIPPED, decide_release, parity_gate
from tests.support.release import fixed_model, fixed_model_onnx, normalised, perturbed, pizzas, tiny_config


@pytest.fixture(scope="module")
def data():
    images, counts = pizzas(24)
    return normalised(images), counts, [f"s{i}" for i in range(len(images))]


@pytest.fixture(scope="module")
def built(tmp_path_factory, data):
    inputs, counts, ids = data
    out = tmp_path_factory.mktemp("formats")
    model = fixed_model()
    onnx_path = fixed_model_onnx()
    config = tiny_config()
    results = build_formats(
        config,
        model,
        onnx_path,
        out,
        inputs=inputs,
        targets=counts,
        ids=ids,
        calibration=inputs[:16],
        preprocessing=Preprocessing(64).to_json(),
    )
    return {r.name: r for r in results}, model, out


def test_every_format_is_built_and_measured(built):
    formats, _, _ = built
    assert set(formats) == {"torch", "onnx", "coreml_fp32", "coreml_fp16", "onnx_int8_static", "onnx_int8_dynamic"}
    for name, result in formats.items():
        assert result.error is None, name
        if name != "torch":
            assert Path(result.path).exists() and result.size_bytes > 0
    assert formats["onnx"].parity.passed and formats["onnx"].parity.max_abs_diff < 1e-4
    assert formats["onnx_int8_static"].size_bytes < formats["onnx"].size_bytes
    assert formats["onnx_int8_dynamic"].size_bytes < formats["onnx"].size_bytes
    assert formats["onnx"].latency_ms is not None and formats["onnx_int8_static"].latency_ms is not None


def test_coreml_specs_are_valid_and_parity_is_skipped_off_macos(built):
    formats, _, _ = built
    assert formats["coreml_fp32"].spec_problems == []
    assert formats["coreml_fp16"].spec_problems == []
    can, reason = coreml_can_predict()
    if not can:
        assert formats["coreml_fp32"].parity is None
        assert "macOS" in formats["coreml_fp32"].parity_method
        assert parity_gate(formats["coreml_fp32"]).status == SKIPPED
        # fp16 is estimated with fp16-rounded torch, and for this model that estimate agrees
        assert formats["coreml_fp16"].parity_method.startswith("estimated")
    assert formats["coreml_fp16"].parity.passed


@pytest.mark.skipif(not coreml_can_predict()[0], reason=coreml_can_predict()[1])
def test_coreml_numeric_parity_on_macos(built, data):
    from doughflow.export.runtimes import coreml_predictor

    formats, model, _ = built
    inputs = data[0]
    reference = torch_predictor(model)(inputs)
    diff = np.abs(coreml_predictor(formats["coreml_fp32"].path)(inputs) - reference).max()
    assert diff < 1e-3


def test_int8_model_passes_the_same_gates_as_fp32_and_ships_only_then(built):
    formats, _, _ = built
    decision = decide_release(list(formats.values()), [], {}, {})
    for name in ("onnx_int8_static", "onnx_int8_dynamic"):
        gate = parity_gate(formats[name])
        assert gate.status in (PASSED, FAILED)
        assert (name in decision.shipped) == (gate.status == PASSED)
        assert (name in decision.excluded) == (gate.status == FAILED)


def test_broken_onnx_and_int8_fail_their_parity_gates_and_reject_the_release(tmp_path, data):
    inputs, counts, ids = data
    model = fixed_model()
    broken_onnx = export_onnx(perturbed(model), tmp_path / "broken.onnx", 64, 18)
    config = tiny_config()
    config.release.coreml.enabled = False
    config.release.quantization.dynamic = False
    results = build_formats(
        config,
        model,
        broken_onnx,
        tmp_path,
        inputs=inputs,
        targets=counts,
        ids=ids,
        calibration=inputs[:16],
        preprocessing=Preprocessing(64).to_json(),
    )
    by_name = {r.name: r for r in results}
    assert parity_gate(by_name["onnx"]).status == FAILED
    assert parity_gate(by_name["onnx_int8_static"]).status == FAILED
    decision = decide_release(results, [], {}, {})
    assert decision.status == "rejected"
    assert any(reason.startswith("onnx: parity vs torch failed") for reason in decision.reasons)
    assert "onnx_int8_static" in decision.excluded


def test_fp16_estimate_gate_fails_on_perturbed_weights(data):
    inputs, _, ids = data
    model = fixed_model()
    reference = torch_predictor(model)(inputs)
    tolerance = FormatTolerance(atol=0.25)
    intact = compare_outputs(
        reference, fp16_emulated_predictor(model)(inputs), ids, tolerance.atol, tolerance.min_rounded_agreement
    )
    broken = compare_outputs(
        reference,
        fp16_emulated_predictor(perturbed(model))(inputs),
        ids,
        tolerance.atol,
        tolerance.min_rounded_agreement,
    )
    assert intact.passed and not broken.passed


def test_onnx_predictor_accepts_any_batch(built, data):
    formats, model, _ = built
    inputs = data[0]
    predict = onnx_predictor(formats["onnx"].path, batch_size=5)  # uneven last batch
    assert predict(inputs).shape == (len(inputs), 5)
    assert predict(inputs[:1]).shape == (1, 5)
