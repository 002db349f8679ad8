"""Rewrite files of a bundle so that a crash at any moment leaves a bundle that verifies.

Renaming files one by one always has a moment where the model card is new and the manifest old (or
the reverse), and that bundle fails verification. So a change is staged in a sibling folder (the
bundle's files hard-linked, so nothing large is copied; changed files written to temporary names and
renamed in, the manifest last; signed), checked there, and then exchanged with the bundle in one
``renameat2(RENAME_EXCHANGE)`` call: readers see the old bundle or the new one, never a mix. Where the
system has no exchange (not Linux, or a file system without it), the changed files are renamed into the
bundle one by one, manifest last, which leaves that short window open.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from doughflow.paths import remove_tree

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(first: Path, second: Path) -> bool:
    """Swap two directory entries atomically; False (nothing done) where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), f"{first} <-> {second}")


def staged_copy(bundle_dir: Path) -> Path:
    """A sibling folder holding hard links to every file of ``bundle_dir`` (copies where links fail).
    Call it holding the run's lock: staged folders a killed writer left behind are deleted first."""
    bundle_dir = Path(bundle_dir)
    for leftover in bundle_dir.parent.glob(f".{bundle_dir.name}.staged-*"):  # from a writer killed mid-way
        remove_tree(bundle_dir.parent, leftover)
    staged = bundle_dir.parent / f".{bundle_dir.name}.staged-{os.getpid()}"

    def link(source: str, target: str) -> None:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    shutil.copytree(bundle_dir, staged, copy_function=link, symlinks=True)
    return staged


def write_atomic(path: Path, content: bytes) -> None:
    """Write to a temporary name, flush to disk, rename over ``path`` (replacing a hard link, never
    writing through it into the file it shares with the live bundle)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def commit(staged: Path, bundle_dir: Path, changed: Iterable[str]) -> str:
    """Make ``staged`` the bundle: one atomic exchange, else the ``changed`` names (in order, manifest
    last) renamed into place. The staged folder (then holding the old files) is deleted. Returns how."""
    staged, bundle_dir = Path(staged), Path(bundle_dir)
    try:
        if exchange(staged, bundle_dir):
            return "exchanged"
        for name in changed:
            os.replace(staged / name, bundle_dir / name)
        return "renamed"
    finally:
        remove_tree(bundle_dir.parent, staged)
