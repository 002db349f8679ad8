"""`python -m flows.verify`: an intact approved bundle passes; tampering, a wrong model or a rejected
release each give a non-zero exit with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from doughflow.cli.verify import main
from doughflow.export.coreml_export import export_coreml
from doughflow.export.formats import DeployResult, FormatResult
from doughflow.export.onnx_export import ParityReport, export_onnx
from doughflow.export.runtimes import torch_predictor
from doughflow.packaging.bundle import build_bundle
from doughflow.packaging.release_contents import manifest_extra, shipped_files
from doughflow.packaging.verify import preprocess_from_json
from doughflow.preprocessing import Preprocessing
from doughflow.release.gates import decide_release
from tests.support.release import LABELS, fixed_model, fixed_model_onnx, perturbed, pizzas, tiny_config

PASSING = ParityReport(10, 0.0, 0.0, 1.0, 1e-3, 0.99, True)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    out = tmp_path_factory.mktemp("sources")
    model = fixed_model()
    pre = Preprocessing(64)
    images, _ = pizzas(1)
    sample = out / "verify_sample.npz"
    np.savez(sample, pixels=images, expected=torch_predictor(model)(pre.to_tensor(images).numpy()))
    coreml = export_coreml(model, out / "model.mlpackage", image_size=64, labels=LABELS, preprocessing=pre.to_json())
    return {"onnx": fixed_model_onnx(), "coreml": coreml, "sample": sample, "model": model, "out": out}


def make_bundle(target: Path, sources: dict, onnx_path: Path | None = None, reject: bool = False) -> Path:
    config = tiny_config()
    formats = [
        FormatResult("torch", "model.pt", None, True),
        FormatResult("onnx", "model.onnx", str(onnx_path or sources["onnx"]), True, parity=PASSING),
        FormatResult(
            "coreml_fp32",
            "model.mlpackage",
            str(sources["coreml"]),
            True,
            spec_problems=[],
            parity_method="skipped: macOS only",
        ),
    ]
    if reject:
        formats[1].parity = ParityReport(10, 2.0, 1.0, 0.1, 1e-3, 0.99, False)
    deploy = DeployResult(formats, 10, "", str(sources["sample"]))
    decision = decide_release(formats, [], {}, {})
    pre = Preprocessing(64).to_json()
    build_bundle(
        target,
        files=shipped_files(deploy, decision),
        documents={"labels.json": {"labels": LABELS}, "preprocessing.json": pre},
        run_id="t",
        data_fingerprint="f",
        config_hash="h",
        extra=manifest_extra(config, deploy, decision),
    )
    return target


def test_intact_bundle_verifies(tmp_path, sources, capsys):
    bundle = make_bundle(tmp_path / "b", sources)
    assert main([str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "model.onnx (onnx): loaded and predicted" in out and "model.mlpackage (coreml_fp32)" in out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["release"]["status"] == "released"
    assert any(name.startswith("model.mlpackage/") for name in manifest["files"])


def test_tampered_file_fails_with_its_name(tmp_path, sources, capsys):
    bundle = make_bundle(tmp_path / "b", sources)
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(data))
    assert main([str(bundle)]) == 1
    assert "model.onnx: sha256 differs from manifest" in capsys.readouterr().err


def test_tampered_coreml_weights_and_unlisted_files_fail(tmp_path, sources, capsys):
    bundle = make_bundle(tmp_path / "b", sources)
    weights = next((bundle / "model.mlpackage").rglob("weight.bin"))
    weights.write_bytes(weights.read_bytes()[:-4])
    (bundle / "extra.txt").write_text("not from the pipeline")
    assert main([str(bundle)]) == 1
    err = capsys.readouterr().err
    assert "weight.bin: size" in err and "extra.txt: present but not in manifest" in err


def test_consistent_hashes_but_wrong_model_fails_the_prediction_check(tmp_path, sources, capsys):
    wrong = export_onnx(perturbed(sources["model"]), tmp_path / "wrong.onnx", 64, 18)
    bundle = make_bundle(tmp_path / "b", sources, onnx_path=wrong)
    assert main([str(bundle)]) == 1
    assert "differs from torch" in capsys.readouterr().err


def test_rejected_release_exits_3_with_reason(tmp_path, sources, capsys):
    bundle = make_bundle(tmp_path / "b", sources, reject=True)
    assert main([str(bundle)]) == 3
    assert "rejected: release rejected: onnx: parity vs torch failed" in capsys.readouterr().err


def test_missing_manifest_fails(tmp_path, sources):
    bundle = make_bundle(tmp_path / "b", sources)
    (bundle / "manifest.json").unlink()
    assert main([str(bundle)]) == 1


def test_preprocessing_json_reproduces_the_pipeline_input():
    images, _ = pizzas(2)
    pre = Preprocessing(64)
    np.testing.assert_allclose(preprocess_from_json(images, pre.to_json()), pre.to_tensor(images).numpy(), atol=1e-6)
