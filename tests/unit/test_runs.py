"""Run ids are one plain folder name, checked wherever they enter; run folders stay in the artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doughflow.paths import PathEscapeError
from doughflow.runs import InvalidRunIdError, RunPaths, check_run_id, new_run_id


@given(st.text(max_size=140))
def test_an_accepted_run_id_is_one_safe_folder_name(text):
    try:
        check_run_id(text)
    except InvalidRunIdError:
        return
    assert Path(text).name == text and text not in (".", "..") and ".." not in text
    assert not text.startswith(("-", ".")) and "/" not in text and "\\" not in text and len(text) <= 128


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "..",
        "a/b",
        "/etc",
        ".hidden",
        "-rf",
        "a..b",
        "x" * 129,
        "",
        "run id",
        "a\x00b",
        "datasets",
        "tune",
        "C:\\x",
    ],
)
def test_path_like_run_ids_are_refused_by_name(bad, tmp_path):
    with pytest.raises(InvalidRunIdError, match="run id"):
        check_run_id(bad)
    with pytest.raises(InvalidRunIdError):
        RunPaths(tmp_path, bad)


def test_new_run_ids_pass_their_own_check():
    assert check_run_id(new_run_id("pizza")) and check_run_id(
        new_run_id("pizza", "0b6e7c2a-1f3d-4e5f-9a8b-7c6d5e4f3a2b")
    )


def test_a_run_folder_that_links_outside_the_artifacts_is_refused(tmp_path):
    artifacts, elsewhere = tmp_path / "artifacts", tmp_path / "elsewhere"
    artifacts.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, artifacts / "linked")
    with pytest.raises(PathEscapeError, match="outside"):
        RunPaths(artifacts, "linked").stage("train")
    assert not any(elsewhere.iterdir())
    assert RunPaths(artifacts, "plain").stage("data/raw") == artifacts / "plain" / "data" / "raw"
