"""Signing key pairs for tests: ECDSA P-256, written as PEM files (what packaging.signing_key takes)."""

from __future__ import annotations

from pathlib import Path


def write_key_pair(folder: Path) -> tuple[Path, Path]:
    """A fresh key pair as (private.pem, public.pem) in ``folder``."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "signing.pem", folder / "signing.pub.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public
