"""The stack's .env: every secret .env.example leaves empty gets a fresh random value, the file is
its owner's alone, and an existing .env is never overwritten."""

from __future__ import annotations

import stat

import pytest

from doughflow.stack.dotenv import GENERATORS, ROOT, fill, main, read_values, write_env


def test_every_empty_secret_is_filled_fresh():
    template = (ROOT / ".env.example").read_text()
    empty = {key for key, value in read_values(template).items() if not value}
    assert empty == set(GENERATORS)
    first, second = read_values(fill(template)), read_values(fill(template))
    for key in empty:
        assert first[key] and first[key] != second[key]
        assert len(first[key].rsplit(":", 1)[-1]) == 64  # 32 random bytes, hex
    assert first["PREFECT_API_AUTH_STRING"].startswith("doughflow:")
    # Everything else passes through unchanged (comments too).
    assert [line for line in fill(template).splitlines() if "=" not in line or line.startswith("#")] == [
        line for line in template.splitlines() if "=" not in line or line.startswith("#")
    ]


def test_an_unknown_empty_value_is_an_error():
    with pytest.raises(ValueError, match="SOME_TOKEN"):
        fill("SOME_TOKEN=\n")


def test_an_existing_env_is_kept(tmp_path, capsys):
    target = tmp_path / ".env"
    write_env(target, ROOT / ".env.example")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    before = target.read_text()
    assert main(["--output", str(target)]) == 1
    assert "exists" in capsys.readouterr().err and target.read_text() == before
