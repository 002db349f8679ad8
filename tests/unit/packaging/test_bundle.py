"""The bundle: a manifest of SHA-256 hashes that verifies and catches tampering."""

from __future__ import annotations

import json

from doughflow.packaging.bundle import build_bundle, verify_bundle


def test_bundle_manifest_verifies_and_catches_tampering(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx-bytes")
    bundle = build_bundle(
        tmp_path / "bundle",
        files={"model.onnx": model},
        documents={"labels.json": {"labels": ["a"]}},
        run_id="r1",
        data_fingerprint="f" * 64,
        config_hash="c" * 64,
    )
    manifest = json.loads(open(bundle.manifest_path).read())
    assert set(manifest["files"]) == {"model.onnx", "labels.json"}
    assert manifest["data_fingerprint"] == "f" * 64 and "torch" in manifest["libraries"] and "commit" in manifest["git"]
    assert verify_bundle(tmp_path / "bundle") == []
    (tmp_path / "bundle" / "model.onnx").write_bytes(b"onnx-bytez")
    (tmp_path / "bundle" / "extra.txt").write_text("sneaky")
    problems = verify_bundle(tmp_path / "bundle")
    assert any("model.onnx: sha256 differs" in p for p in problems)
    assert any("extra.txt: present but not in manifest" in p for p in problems)
