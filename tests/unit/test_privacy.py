"""Pseudonyms: keyed, stable, never the id; the key is made private on first use and guarded after."""

import os
import stat
import threading

import pytest

from doughflow.config import load_config
from doughflow.privacy import (
    KEY_ENV,
    PREFIX,
    PrivacyKeyError,
    Pseudonymiser,
    is_pseudonym,
    key_path,
    pseudonymiser,
    pseudonymiser_for,
    read_key,
)


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


def test_key_is_made_once_private_and_reused(tmp_path):
    first = pseudonymiser(tmp_path)
    path = key_path(tmp_path, None)
    assert path == tmp_path / ".keys" / "pseudonym.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert pseudonymiser(tmp_path)("cust-00012") == first("cust-00012")
    assert [p.name for p in path.parent.iterdir()] == ["pseudonym.key"]  # no temporary file left


def test_pseudonyms_are_keyed_stable_and_not_the_id(tmp_path):
    one, other = Pseudonymiser(b"k" * 32), Pseudonymiser(b"j" * 32)
    value = one("cust-00012")
    assert value.startswith(PREFIX) and is_pseudonym(value) and "00012" not in value
    assert one("cust-00012") == value != one("cust-00013") and other("cust-00012") != value
    assert one.many(["a", None, ""]) == [one("a"), None, ""]
    assert "k" * 8 not in repr(one)


def test_a_key_others_can_read_is_refused(tmp_path):
    path = tmp_path / "shared.key"
    path.write_text("x" * 64)
    path.chmod(0o644)
    with pytest.raises(PrivacyKeyError, match=r"shared\.key is readable by others \(mode 644\): chmod 600"):
        read_key(path)
    path.chmod(0o600)
    assert read_key(path) == b"x" * 64
    path.write_text("short")
    with pytest.raises(PrivacyKeyError, match="shorter than 32"):
        read_key(path)


def test_environment_key_wins_and_must_be_long(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "e" * 40)
    assert pseudonymiser(tmp_path)("a") == Pseudonymiser(b"e" * 40)("a")
    assert not (tmp_path / ".keys").exists()  # nothing written when the key comes from the environment
    monkeypatch.setenv(KEY_ENV, "tiny")
    with pytest.raises(PrivacyKeyError, match=KEY_ENV):
        pseudonymiser(tmp_path)


def test_concurrent_first_use_agrees_on_one_key(tmp_path):
    results, errors = [], []

    def make():
        try:
            results.append(pseudonymiser(tmp_path)("cust-1"))
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1


def test_config_key_file(tmp_path):
    config = load_config(None, [f"artifacts_dir={tmp_path / 'a'}", f"privacy.key_file={tmp_path / 'k' / 'p.key'}"])
    assert pseudonymiser_for(config)("x").startswith(PREFIX)
    assert (tmp_path / "k" / "p.key").exists() and not (tmp_path / "a").exists()
    assert os.stat(tmp_path / "k" / "p.key").st_mode & 0o077 == 0
