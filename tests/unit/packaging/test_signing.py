"""Bundle signatures: every file is covered, any change or another key fails, and publishing refuses an
unsigned bundle while a key is configured."""

from __future__ import annotations

import pytest

from doughflow.config import load_config
from doughflow.packaging.bundle import SIGNATURE, build_bundle, verify_bundle
from doughflow.packaging.signing import (
    SigningError,
    UnsignedBundleError,
    key_fingerprint,
    sign_bundle,
    signature_problems,
    signing_key_path,
)
from doughflow.stages.publish import require_signature
from tests.support.signing import write_key_pair


@pytest.fixture
def bundle(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx-bytes")
    return build_bundle(
        tmp_path / "run" / "bundle",
        files={"model.onnx": model},
        documents={"labels.json": {"labels": ["a"]}, "model_card.md": "# card\n"},
        run_id="r1",
        data_fingerprint="f" * 64,
        config_hash="c" * 64,
        extra={"release": {"status": "released"}},
    )


def test_a_signature_covers_every_file_and_only_its_key(bundle, tmp_path):
    private, public = write_key_pair(tmp_path / "keys")
    _, other_public = write_key_pair(tmp_path / "other")
    folder = tmp_path / "run" / "bundle"
    assert signature_problems(folder, public) == [f"{SIGNATURE}: missing: the bundle is not signed"]
    sign_bundle(folder, private)
    assert signature_problems(folder, public) == [] and verify_bundle(folder) == []  # the signature is not "unlisted"
    assert "does not verify" in signature_problems(folder, other_public)[0]
    manifest = folder / "manifest.json"
    original = manifest.read_text()
    for edit in (
        lambda: manifest.write_text(original.replace("released", "rejected")),  # hashes would not catch it
        lambda: (folder / "note.txt").write_text("planted"),
    ):
        edit()
        assert "does not verify" in signature_problems(folder, public)[0]
        manifest.write_text(original)
        (folder / "note.txt").unlink(missing_ok=True)
    assert signature_problems(folder, public) == []
    (folder / SIGNATURE).write_text("{}")  # a damaged signature is a failure, not a crash
    assert "does not verify" in signature_problems(folder, public)[0]


def test_keys_come_from_config_or_environment_and_must_be_ecdsa(tmp_path, monkeypatch):
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    monkeypatch.delenv("DOUGHFLOW_SIGNING_KEY", raising=False)
    assert signing_key_path(None) is None
    monkeypatch.setenv("DOUGHFLOW_SIGNING_KEY", str(tmp_path / "env.pem"))
    assert signing_key_path(None) == tmp_path / "env.pem" and signing_key_path("cfg.pem").name == "cfg.pem"
    edwards = tmp_path / "ed.pem"
    edwards.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    with pytest.raises(SigningError, match="must be an ECDSA private key"):
        key_fingerprint(edwards)
    with pytest.raises(SigningError, match="cannot be read"):
        key_fingerprint(tmp_path / "missing.pem")


def test_publishing_refuses_an_unsigned_bundle_when_signing_is_configured(bundle, tmp_path, monkeypatch):
    monkeypatch.delenv("DOUGHFLOW_SIGNING_KEY", raising=False)
    private, _ = write_key_pair(tmp_path / "keys")
    folder = tmp_path / "run" / "bundle"
    require_signature(load_config(None), folder)  # no key configured: nothing to check
    configured = load_config(None, [f"packaging.signing_key={private}"])
    with pytest.raises(UnsignedBundleError, match="not signed"):
        require_signature(configured, folder)
    sign_bundle(folder, private)
    require_signature(configured, folder)
    other, _ = write_key_pair(tmp_path / "other")
    with pytest.raises(UnsignedBundleError, match="does not verify"):
        require_signature(load_config(None, [f"packaging.signing_key={other}"]), folder)
