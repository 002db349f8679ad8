"""The hostile-input suite's ground rule, as a fixture: whatever goes in, nothing outside the artifacts
folder changes.

A sandbox is a folder holding the artifacts folder and, around it, a sentinel tree: files a path-like id
or run id could aim at (``../outside.txt``, ``../../etc/passwd``), a sibling whose name starts like the
artifacts folder's (``artifacts-old``: a naive ``startswith`` check passes it), private keys, and the
case's own inputs (sources, verdict files), which must not be changed either: nothing is lost. The test
builds its inputs, calls ``seal()``, runs the case; at teardown every path outside the artifacts folder
must have the same type, bytes, mode and mtime, and nothing may have appeared or vanished. The
repository's top level is checked the same way (nothing may land in the working directory).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Written by the test runner itself, not by the code under test.
RUNNER_LITTER = {".pytest_cache", "__pycache__", ".hypothesis", ".coverage"}

SENTINELS = {
    "outside.txt": "a file beside the work folder",
    "work/outside.txt": "a file beside the artifacts folder (../outside.txt from it)",
    "work/artifacts-old/keep.txt": "a sibling whose name starts like the artifacts folder's",
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
    "secrets/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n",
}


def snapshot(root: Path, skip: Path) -> dict[str, tuple]:
    """Every path under ``root`` except the ``skip`` subtree: type, mode, mtime and content hash."""
    found: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != skip]
        for name in dirs + files:
            path = here / name
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[key] = ("dir", stat.S_IMODE(info.st_mode))
            elif stat.S_ISREG(info.st_mode):
                found[key] = (
                    "file",
                    stat.S_IMODE(info.st_mode),
                    info.st_mtime_ns,
                    hashlib.sha256(path.read_bytes()).hexdigest(),
                )
            else:  # FIFOs are inputs too (they must never be opened)
                found[key] = ("special", stat.S_IFMT(info.st_mode), info.st_mtime_ns)
    return found


def repo_top_level() -> set[str]:
    return {p.name for p in REPO.iterdir()} - RUNNER_LITTER


@dataclass
class Sandbox:
    root: Path
    artifacts: Path
    before: dict[str, tuple] | None = None
    repo_before: set[str] = field(default_factory=set)

    @property
    def outside(self) -> Path:
        return self.root / "outside.txt"

    def inputs(self, name: str) -> Path:
        """A folder for a case's inputs (sources, verdict files): checked like the sentinels."""
        path = self.root / "inputs" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def seal(self) -> None:
        """Inputs are in place: from here on, nothing outside the artifacts folder may change."""
        self.before = snapshot(self.root, self.artifacts)
        self.repo_before = repo_top_level()

    def changes(self) -> list[str]:
        assert self.before is not None, "seal() the sandbox before running the case"
        after = snapshot(self.root, self.artifacts)
        problems = [f"new: {p}" for p in sorted(set(after) - set(self.before))]
        problems += [f"gone: {p}" for p in sorted(set(self.before) - set(after))]
        problems += [f"changed: {p}" for p in sorted(set(after) & set(self.before)) if after[p] != self.before[p]]
        problems += [f"new in the repository: {p}" for p in sorted(repo_top_level() - self.repo_before)]
        return problems


def make_sandbox(root: Path) -> Sandbox:
    for relative, text in SENTINELS.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "secrets" / "id_ed25519").chmod(0o600)
    artifacts = root / "work" / "artifacts"
    artifacts.mkdir(parents=True)
    return Sandbox(root, artifacts)


@pytest.fixture
def sandbox(tmp_path):
    box = make_sandbox(tmp_path / "box")
    yield box
    assert box.changes() == []


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory):
    """One sandbox for a module's shared run; checked once, after the module's last case."""
    box = make_sandbox(tmp_path_factory.mktemp("box"))
    yield box
    assert box.changes() == []
