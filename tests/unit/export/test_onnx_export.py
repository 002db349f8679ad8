import numpy as np
import pytest
import torch

from doughflow.export.onnx_export import ParityError, check_parity, compare_outputs, export_onnx, onnx_predict
from doughflow.training.models import build_model


def test_onnx_export_has_dynamic_batch_and_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = build_model("density_cnn", num_classes=3, width=8).eval()
    path = export_onnx(model, tmp_path / "model.onnx", image_size=64, opset=18)
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    for batch in (1, 7):
        x = torch.randn(batch, 3, 64, 64)
        got = onnx_predict(path, x.numpy())
        report = compare_outputs(model(x).detach().numpy(), got, [str(i) for i in range(batch)], 1e-4, 1.0)
        assert got.shape == (batch, 3) and report.passed


def test_parity_gate_fails_on_a_perturbed_model():
    reference = np.array([[1.0, 2.0], [0.2, 3.1]], np.float32)
    report = compare_outputs(
        reference, reference + np.array([[0.0, 0.0], [0.0, 0.6]], np.float32), ["a", "b"], 1e-3, 1.0
    )
    assert not report.passed and report.worst[0]["sample_id"] == "b"
    with pytest.raises(ParityError, match="onnx parity failed"):
        check_parity(report, "onnx")


def test_classification_parity_counts_argmax_agreement():
    reference = np.array([[2.0, 1.0, 0.0], [0.0, 0.51, 0.5], [0.1, 0.0, 3.0]], np.float32)
    flipped = reference + np.array([[0.0, 0.0, 0.0], [0.0, -0.02, 0.0], [0.0, 0.0, 0.0]], np.float32)
    report = compare_outputs(reference, flipped, ["a", "b", "c"], 0.1, 1.0, problem="classification")
    assert report.agreement == "argmax class" and report.rounded_agreement == 2 / 3 and not report.passed
    assert report.max_abs_diff <= 0.1  # within atol: only the decision flipped
    counted = compare_outputs(reference, flipped, ["a", "b", "c"], 0.1, 1.0)
    assert counted.agreement == "rounded counts"


def test_classifier_exports_logits_that_match_torch(tmp_path):
    import onnx

    model = build_model("density_cnn", num_classes=4, problem="classification", width=8).eval()
    path = export_onnx(model, tmp_path / "classifier.onnx", image_size=32, opset=18, output_name="logits")
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["logits"]
    x = torch.randn(5, 3, 32, 32)
    got = onnx_predict(path, x.numpy())
    report = compare_outputs(
        model(x).detach().numpy(), got, [str(i) for i in range(5)], 1e-4, 1.0, problem="classification"
    )
    assert report.passed and report.rounded_agreement == 1.0
    from doughflow.export.quantize import quantize_dynamic_int8, quantize_static_qdq

    int8 = quantize_static_qdq(
        path, tmp_path / "classifier_int8.onnx", x.numpy()
    )  # ORT's shape inference follows the head
    assert onnx_predict(int8, x.numpy()).shape == (5, 4)
    assert onnx_predict(quantize_dynamic_int8(path, tmp_path / "dyn.onnx"), x.numpy()).shape == (5, 4)
