"""Paths stay in their folder: the one check every write, delete and clean-up of ours goes through.

A path that comes from data, config, a manifest or a run id is resolved (symlinks followed, ``..``
collapsed) before it is trusted, and refused when it lands outside the folder it is meant for. The
check is on the resolved path because a symlinked run folder (``artifacts/r -> /etc``) or a
``../../`` inside a name passes any check on the text and still writes elsewhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class PathEscapeError(ValueError):
    """A path resolves outside the folder it must stay in; the message names both."""


def inside(root: str | Path, target: str | Path) -> Path:
    """``target`` resolved, when it is ``root`` or lies under it (both resolved); else PathEscapeError.
    Relative paths are relative to the working directory, as for ``open``; the target need not exist."""
    base = Path(root).resolve()
    resolved = Path(target).resolve()
    if resolved != base and base not in resolved.parents:
        raise PathEscapeError(f"{target} resolves to {resolved}, outside {base}: refused")
    return resolved


def remove_tree(root: str | Path, target: str | Path, *, missing_ok: bool = True) -> None:
    """``shutil.rmtree`` of a folder that must lie strictly under ``root``; a symlink is unlinked, never
    followed (so deleting a planted link to elsewhere deletes only the link)."""
    path = Path(target)
    if path.is_symlink():
        inside(root, path.parent)
        path.unlink()
        return
    resolved = inside(root, path)
    if resolved == Path(root).resolve():
        raise PathEscapeError(f"{target} is {root} itself: refusing to delete the whole folder")
    if not resolved.exists() and missing_ok:
        return
    shutil.rmtree(resolved)


def remove_file(root: str | Path, target: str | Path) -> None:
    """Unlink a file under ``root`` (a symlink itself, not what it points to); absent is fine."""
    path = Path(target)
    inside(root, path.parent)
    path.unlink(missing_ok=True)
