"""The release decision: primary failures reject, optional failures only drop their file, skips block nothing."""

from __future__ import annotations

from doughflow.evaluation.behaviour import PropertyResult
from doughflow.export.formats import FormatResult
from doughflow.export.onnx_export import ParityReport
from doughflow.release.gates import FAILED, PASSED, SKIPPED, accuracy_gate, decide_release, spec_gate


def parity(passed: bool) -> ParityReport:
    return ParityReport(100, 0.001 if passed else 0.9, 0.0, 1.0 if passed else 0.5, 0.01, 0.99, passed)


def fmt(name: str, primary: bool, passed: bool = True, **kwargs) -> FormatResult:
    return FormatResult(name, f"{name}.bin", f"/x/{name}", primary, parity=parity(passed), **kwargs)


def prop(fmt_name: str, passed: bool) -> PropertyResult:
    return PropertyResult(
        fmt_name,
        "empty_pizza",
        "minimum functionality",
        10,
        0 if passed else 5,
        0.0 if passed else 0.5,
        0.1,
        0.1,
        "m",
        passed=passed,
    )


def formats(**failing):
    return [
        FormatResult("torch", "model.pt", None, True),
        fmt("onnx", True, not failing.get("onnx")),
        FormatResult(
            "coreml_fp32",
            "model.mlpackage",
            "/x/c",
            True,
            spec_problems=failing.get("spec", []),
            parity_method="skipped: macOS only",
        ),
        fmt("onnx_int8_static", False, not failing.get("int8")),
    ]


def test_everything_passing_releases_all_built_formats():
    decision = decide_release(
        formats(), [], {"torch": [prop("torch", True)], "onnx": [prop("onnx", True)]}, {"coreml_fp32": "macOS only"}
    )
    assert decision.status == "released" and not decision.reasons
    assert decision.shipped == ["onnx", "coreml_fp32", "onnx_int8_static"]
    assert {g.status for g in decision.gates if g.fmt == "coreml_fp32" and "spec" not in g.name} == {SKIPPED}


def test_failed_primary_parity_rejects_with_reason():
    decision = decide_release(formats(onnx=True), [], {}, {})
    assert decision.status == "rejected"
    assert decision.reasons[0].startswith("onnx: parity vs torch failed")


def test_failed_optional_format_is_left_out_but_release_stands():
    decision = decide_release(formats(int8=True), [], {}, {})
    assert decision.status == "released"
    assert "onnx_int8_static" not in decision.shipped and "parity" in decision.excluded["onnx_int8_static"]


def test_failed_property_of_the_torch_model_rejects():
    decision = decide_release(formats(), [], {"torch": [prop("torch", False)]}, {})
    assert decision.status == "rejected" and "behavioural properties" in decision.reasons[0]


def test_bad_coreml_spec_rejects():
    decision = decide_release(formats(spec=["inputs are ['x'], expected ['images']"]), [], {}, {})
    assert decision.status == "rejected" and "coreml_fp32: spec" in decision.reasons[0]
    assert spec_gate(FormatResult("onnx", "m", "p", True)) is None


def test_conversion_error_is_a_failed_gate():
    broken = formats() + [FormatResult("coreml_fp16", "f.mlpackage", None, False, error="RuntimeError: boom")]
    decision = decide_release(broken, [], {}, {})
    assert decision.status == "released" and "boom" in decision.excluded["coreml_fp16"]


def test_accuracy_gate():
    assert accuracy_gate({"test": {"exact_count_accuracy": 0.97}}, 0.95).status == PASSED
    assert accuracy_gate({"test": {"exact_count_accuracy": 0.90}}, 0.95).status == FAILED
    assert accuracy_gate({"test": {"exact_count_accuracy": 0.10}}, 0.0).status == PASSED


def test_metric_gates_compare_test_metrics_with_their_bars():
    from doughflow.release.gates import metric_gates

    metrics = {"test": {"n": 40, "accuracy": 0.92, "macro_f1": 0.88, "per_class": {}}}
    gates = {g.name: g for g in metric_gates(metrics, {"accuracy": 0.9, "macro_f1": 0.9, "acuracy": 0.5})}
    assert gates["test accuracy bar"].status == PASSED and "0.9200 (bar 0.9)" in gates["test accuracy bar"].detail
    assert gates["test macro_f1 bar"].status == FAILED
    typo = gates["test acuracy bar"]
    assert (
        typo.status == FAILED and "not measured" in typo.detail and "accuracy" in typo.detail
    )  # never passes silently
    decision = decide_release(formats(), list(gates.values()), {}, {})
    assert decision.status == "rejected" and any("macro_f1" in reason for reason in decision.reasons)
    assert metric_gates(metrics, {}) == []
