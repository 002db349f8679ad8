"""Bundle signatures: OpenSSF ``model-signing`` with an ECDSA key, offline, over every file of the bundle.

The manifest's hashes prove the files match the manifest; they do not prove who wrote the manifest,
and anyone who can edit a bundle can rewrite both. A signature over the whole folder (manifest with its
release and review status, model card, every model file) made with a key the pipeline holds does. It
is ``bundle.sig`` in the bundle (a Sigstore bundle holding an in-toto statement of every file's
SHA-256); the only file it does not cover is itself. Key-based signing needs no network (Sigstore's
keyless mode does); model-signing 1.1's key signer takes elliptic-curve keys (P-256, P-384, P-521),
not ed25519. Importing it costs ~1.7 s, signing a bundle ~0.1 s, so it is imported only when used.

The key is ``packaging.signing_key`` or, when that is empty, the file named by ``DOUGHFLOW_SIGNING_KEY``
(an encrypted key takes its password from ``DOUGHFLOW_SIGNING_KEY_PASSWORD``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from doughflow.packaging.bundle import SIGNATURE

SIGNING_KEY_ENV = "DOUGHFLOW_SIGNING_KEY"
SIGNING_KEY_PASSWORD_ENV = "DOUGHFLOW_SIGNING_KEY_PASSWORD"


class SigningError(RuntimeError):
    """The signing key is unusable, or a bundle could not be signed."""


class UnsignedBundleError(RuntimeError):
    """Signing is configured but the bundle carries no signature that verifies with its key."""


def signing_key_path(configured: str | None) -> Path | None:
    """The configured key file, else DOUGHFLOW_SIGNING_KEY's, else None (bundles are not signed)."""
    value = configured or os.environ.get(SIGNING_KEY_ENV) or None
    return Path(value).expanduser() if value else None


def _private_key(path: Path):  # noqa: ANN202 - a cryptography EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    password = os.environ.get(SIGNING_KEY_PASSWORD_ENV)
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password.encode() if password else None)
    except (OSError, ValueError, TypeError) as error:
        raise SigningError(f"signing key {path}: cannot be read as a PEM private key ({error})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError(
            f"signing key {path}: must be an ECDSA private key (P-256, P-384 or P-521), got {type(key).__name__}"
        )
    return key


def public_key_pem(private_key: Path) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _private_key(private_key).public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(private_key: Path) -> str:
    """SHA-256 of the public key (never of the secret): what a signed bundle's cache key depends on."""
    return hashlib.sha256(public_key_pem(private_key)).hexdigest()[:16]


def _hashing_config():  # noqa: ANN202 - a model_signing.hashing.Config
    from model_signing import hashing

    # Nothing but the signature itself is left out (model-signing skips .git* files by default).
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)


def sign_bundle(bundle_dir: Path, private_key: Path) -> Path:
    """Sign every file of ``bundle_dir`` into ``bundle_dir/bundle.sig`` (written beside the folder,
    then renamed in, so the folder never holds half a signature)."""
    from model_signing import signing

    bundle_dir = Path(bundle_dir)
    _private_key(private_key)  # a clear error for an unusable key before model-signing's own
    password = os.environ.get(SIGNING_KEY_PASSWORD_ENV)
    staged = bundle_dir.parent / f".{bundle_dir.name}.{SIGNATURE}.{os.getpid()}.tmp"
    try:
        (
            signing.Config()
            .set_hashing_config(_hashing_config())
            .use_elliptic_key_signer(private_key=private_key, password=password)
            .sign(bundle_dir, staged)
        )
        os.replace(staged, bundle_dir / SIGNATURE)
    except (OSError, ValueError) as error:
        raise SigningError(f"cannot sign {bundle_dir}: {error}") from None
    finally:
        staged.unlink(missing_ok=True)
    return bundle_dir / SIGNATURE


def signature_problems(bundle_dir: Path, public_key: Path) -> list[str]:
    """Why the bundle's signature does not verify with ``public_key`` (PEM); empty when it does."""
    from model_signing import verifying

    bundle_dir = Path(bundle_dir)
    signature = bundle_dir / SIGNATURE
    if signature.is_symlink() or not signature.is_file():
        return [f"{SIGNATURE}: missing: the bundle is not signed"]
    try:
        (
            verifying.Config()
            .set_hashing_config(_hashing_config())
            .use_elliptic_key_verifier(public_key=public_key)
            .verify(bundle_dir, signature)
        )
    except Exception as error:  # noqa: BLE001 - every way a signature fails to verify is the finding
        return [f"{SIGNATURE}: does not verify with {public_key}: {type(error).__name__}: {error}"]
    return []


def signature_problems_for_key(bundle_dir: Path, private_key: Path) -> list[str]:
    """:func:`signature_problems` against the public half of a private key file (written for the verifier,
    which reads a file, into a temporary folder beside the bundle: nothing lands outside its run)."""
    with tempfile.TemporaryDirectory(prefix=".doughflow-pub-", dir=Path(bundle_dir).parent) as folder:
        public = Path(folder) / "public.pem"
        public.write_bytes(public_key_pem(private_key))
        return signature_problems(bundle_dir, public)
