"""Publishing a bundle to an fsspec URL: every file and the manifest arrive, the copy is verified
by reading it back, and tampering at the destination is named."""

from __future__ import annotations

import json

import fsspec
import pytest

from doughflow.packaging.bundle import build_bundle
from doughflow.packaging.publish import publish_bundle, published_problems


@pytest.fixture
def bundle(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx-bytes" * 1000)
    (tmp_path / "fig").mkdir()
    (tmp_path / "fig" / "loss.png").write_bytes(b"png")
    return build_bundle(
        tmp_path / "bundle",
        files={"model.onnx": model, "figures/loss.png": tmp_path / "fig" / "loss.png"},
        documents={"labels.json": {"labels": ["a"]}},
        run_id="r1",
        data_fingerprint="f" * 64,
        config_hash="c" * 64,
    )


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_publish_copies_and_verifies_every_file(bundle, tmp_path, scheme):
    destination = "memory://published/bundles" if scheme == "memory" else f"file://{tmp_path / 'share'}"
    result = publish_bundle(bundle.bundle_dir, destination)
    assert result.url == f"{destination}/r1" and result.files == 4
    fs, root = fsspec.core.url_to_fs(result.url)
    manifest = json.loads(fs.cat_file(f"{root}/manifest.json"))
    assert set(manifest["files"]) == {"model.onnx", "figures/loss.png", "labels.json"}
    assert fs.cat_file(f"{root}/figures/loss.png") == b"png"
    assert published_problems(result.url) == []


def test_tampered_or_missing_objects_are_named(bundle):
    url = publish_bundle(bundle.bundle_dir, "memory://tamper/bundles").url
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/model.onnx", b"other bytes")
    fs.rm_file(f"{root}/labels.json")
    problems = published_problems(url)
    assert any(p.endswith("model.onnx: sha256 differs from the manifest") for p in problems), problems
    assert any(p.endswith("labels.json: listed in the manifest but missing") for p in problems), problems
    assert published_problems("memory://tamper/nothing-here") == ["memory://tamper/nothing-here/manifest.json: missing"]
