"""Pseudonyms for customer (group) ids wherever they leave a run's ``data/`` folder.

Reports, the review packet and its samples, Prefect artifacts and error messages are read by people who
need to tell customers apart ("these six removed rows were one customer's") but never who the customer
is. A keyed hash gives exactly that: ``HMAC-SHA256(key, id)`` is the same for the same id in every run
that shares the key, so pseudonyms can be compared across reports, yet without the key nobody can test
guesses (a plain SHA-256 of "cust-00012" is reversed by hashing every plausible id, which for ids of a
few digits takes microseconds).

The key comes from ``DOUGHFLOW_PSEUDONYM_KEY`` (the key itself, at least 32 characters) or from the file
``privacy.key_file`` (default ``<artifacts_dir>/.keys/pseudonym.key``), which is generated on first use
with 32 random bytes, mode 0600, in a folder of mode 0700, and refused when others can read it (as ssh
refuses a private key). It never goes into a bundle: bundles hold pseudonyms only, so a bundle shared
with a third party carries no customer ids and no way to recover them.

Data files inside ``data/`` keep the real ids: splits are by customer, and corrected labels exported by
``flows.review`` must land in their customer's split (see :mod:`doughflow.review.labelled`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from doughflow.config import ExperimentConfig

KEY_ENV = "DOUGHFLOW_PSEUDONYM_KEY"
KEY_FILE = Path(".keys") / "pseudonym.key"
PREFIX = "anon-"
DIGEST_CHARS = 20  # 80 bits: no collision to expect below ~10^11 customers
MIN_KEY_CHARS = 32


class PrivacyKeyError(ValueError):
    """The pseudonym key is missing, too short, or readable by others; the message names the file or variable."""


class Pseudonymiser:
    """``pseudonymiser(value)`` -> ``anon-<20 hex>`` ("" stays "": nothing to hide)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_CHARS // 2:
            raise PrivacyKeyError(f"pseudonym key too short ({len(key)} bytes; at least {MIN_KEY_CHARS // 2})")
        self._key = key

    def __call__(self, value: object) -> str:
        text = str(value)
        if not text:
            return ""
        digest = hmac.new(self._key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:DIGEST_CHARS]

    def many(self, values: Iterable[object]) -> list[str | None]:
        """For a column: nulls stay null."""
        return [None if value is None else self(value) for value in values]

    def __repr__(self) -> str:  # never print the key
        return "Pseudonymiser(<key hidden>)"


def is_pseudonym(value: object) -> bool:
    text = str(value)
    return text.startswith(PREFIX) and len(text) == len(PREFIX) + DIGEST_CHARS


def key_path(artifacts_dir: str | Path, key_file: str | None) -> Path:
    return Path(key_file) if key_file else Path(artifacts_dir) / KEY_FILE


def _create_key(path: Path) -> None:
    """Write a fresh key without a window where another process could read a half-written or open file:
    a private temporary file, then a hard link to the final name (which fails if one appeared meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def read_key(path: Path) -> bytes:
    """The key in ``path`` (created when missing); refused when group or others may read it."""
    if not path.exists():
        _create_key(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise PrivacyKeyError(f"pseudonym key {path} is not a regular file")
    if info.st_mode & 0o077:
        raise PrivacyKeyError(
            f"pseudonym key {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"chmod 600 {path}, or pass the key in {KEY_ENV}"
        )
    text = path.read_text().strip()
    if len(text) < MIN_KEY_CHARS:
        raise PrivacyKeyError(f"pseudonym key {path} is shorter than {MIN_KEY_CHARS} characters")
    return text.encode()


def pseudonymiser(artifacts_dir: str | Path, key_file: str | None = None) -> Pseudonymiser:
    """From ``DOUGHFLOW_PSEUDONYM_KEY`` when set, else from the key file (generated on first use)."""
    from_env = os.environ.get(KEY_ENV)
    if from_env is not None:
        if len(from_env.strip()) < MIN_KEY_CHARS:
            raise PrivacyKeyError(f"{KEY_ENV} is shorter than {MIN_KEY_CHARS} characters")
        return Pseudonymiser(from_env.strip().encode())
    return Pseudonymiser(read_key(key_path(artifacts_dir, key_file)))


def pseudonymiser_for(config: ExperimentConfig) -> Pseudonymiser:
    """The pseudonymiser of an experiment (``artifacts_dir``, ``privacy.key_file``)."""
    return pseudonymiser(config.artifacts_dir, config.privacy.key_file)
