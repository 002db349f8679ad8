"""The path guard: resolved targets inside their root pass, anything that resolves elsewhere is refused."""

from __future__ import annotations

import os

import pytest

from doughflow.paths import PathEscapeError, inside, remove_file, remove_tree


def test_inside_resolves_before_it_judges(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert inside(root, root / "a" / "new.txt") == (root / "a" / "new.txt").resolve()
    for escape in (root / ".." / "x", tmp_path / "x", "/etc/passwd"):
        with pytest.raises(PathEscapeError, match="outside"):
            inside(root, escape)
    os.symlink(tmp_path, root / "up")
    with pytest.raises(PathEscapeError):
        inside(root, root / "up" / "x")


def test_remove_tree_never_follows_or_leaves_its_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "victim" / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    os.symlink(outside, root / "link")
    remove_tree(root, root / "link")  # deletes the link, not what it points to
    assert (outside / "keep.txt").read_text() == "mine" and not (root / "link").exists()
    for refused in (outside, root, root / ".." / "outside"):
        with pytest.raises(PathEscapeError):
            remove_tree(root, refused)
    remove_tree(root, root / "victim")
    assert not (root / "victim").exists() and (outside / "keep.txt").exists()
    remove_tree(root, root / "never-there")  # absent is fine
    (root / "f").write_text("x")
    remove_file(root, root / "f")
    with pytest.raises(PathEscapeError):
        remove_file(root, outside / "keep.txt")
