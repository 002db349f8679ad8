"""The release bundle: everything a consumer needs to run the model, nothing of our code.

manifest.json is written last and lists the SHA-256 and size of every other file, with the data
fingerprint, config hash, git commit and library versions: a bundle is verifiable on its own.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from doughflow.data.manifest import file_sha256
from doughflow.paths import PathEscapeError, inside, remove_tree

MANIFEST = "manifest.json"
SIGNATURE = "bundle.sig"  # signs every other file (doughflow.packaging.signing); cannot list itself
TRACKED_LIBRARIES = (
    "doughflow",
    "torch",
    "deepspeed",
    "onnx",
    "onnxruntime",
    "prefect",
    "pyarrow",
    "numpy",
    "pydantic",
)


def git_commit(repo: Path | None = None) -> dict:
    """The commit the code came from, and whether the tree had uncommitted changes."""
    cwd = str(repo or Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class BundleResult:
    bundle_dir: str
    manifest_path: str
    files: int
    signature: str = ""  # bundle.sig when a signing key is configured


def build_bundle(
    bundle_dir: Path,
    *,
    files: dict[str, Path],
    documents: dict[str, dict | list | str],
    run_id: str,
    data_fingerprint: str,
    config_hash: str,
    extra: dict | None = None,
    root: Path | None = None,
) -> BundleResult:
    """Copy ``files`` (bundle name -> source path), write ``documents`` (name -> JSON or text), then
    hash everything into the manifest. An earlier bundle there is deleted first, only when it lies inside
    ``root`` (the artifacts folder; default: the bundle's parent); names are checked like a manifest's."""
    root = Path(root) if root is not None else Path(bundle_dir).parent
    inside(root, bundle_dir)
    for name in [*files, *documents]:
        if entry_name_problem(name):
            raise PathEscapeError(f"bundle file name {name!r} refused ({entry_name_problem(name)})")
    if bundle_dir.exists() or bundle_dir.is_symlink():
        remove_tree(root, bundle_dir)
    bundle_dir.mkdir(parents=True)
    for name, source in files.items():
        target = bundle_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(source).is_dir():  # a package format such as CoreML's .mlpackage; every file is hashed
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
    for name, content in documents.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2, sort_keys=False)
        (bundle_dir / name).write_text(text)
    entries = {}
    for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
        entries[path.relative_to(bundle_dir).as_posix()] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    manifest = {
        "format": "doughflow-bundle/1",
        "run_id": run_id,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data_fingerprint": data_fingerprint,
        "config_hash": config_hash,
        "git": git_commit(),
        "libraries": library_versions(),
        "files": entries,
        **(extra or {}),
    }
    manifest_path = bundle_dir / MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return BundleResult(str(bundle_dir), str(manifest_path), len(entries))


def entry_name_problem(name: object) -> str | None:
    """Why a manifest file name cannot be trusted as a path inside the bundle, or None: names are
    relative POSIX paths without ``..``, ``.`` or empty parts (nothing that could point elsewhere)."""
    if not isinstance(name, str) or not name:
        return "not a file name"
    if name.startswith("/") or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "contains '..'"
    if "." in parts or "" in parts or "\0" in name:
        return "not a normalised relative path"
    return None


def _walk(bundle_dir: Path) -> tuple[set[str], list[str]]:
    """Regular files (relative names) and everything else (symlinks, special files) in the bundle,
    never following a link."""
    files, odd = set(), []
    for folder, dirs, names in os.walk(bundle_dir, followlinks=False):
        for name in [*dirs, *names]:
            path = Path(folder) / name
            relative = path.relative_to(bundle_dir).as_posix()
            if path.is_symlink():
                odd.append(f"{relative}: is a symlink")
            elif name in names and not path.is_file():
                odd.append(f"{relative}: is not a regular file")
            elif name in names:
                files.add(relative)
    return files, odd


def _listed_problem(bundle_dir: Path, name: str, entry: object) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or type(entry.get("bytes")) is not int:
        return f"{name}: manifest entry is not {{sha256, bytes}}"
    path = bundle_dir
    for part in name.split("/"):
        path = path / part
        if path.is_symlink():
            return f"{name}: is a symlink (manifest entries must be files inside the bundle)"
    if not path.is_file():
        return f"{name}: listed in manifest but missing"
    if path.stat().st_size != entry["bytes"]:
        return f"{name}: size {path.stat().st_size} != manifest {entry['bytes']}"
    if file_sha256(path) != entry["sha256"]:
        return f"{name}: sha256 differs from manifest"
    return None


def shipped_model_problems(manifest: dict) -> list[str]:
    """A gated release must list the model file of every format it ships: the ``release.shipped``
    names each need a ``formats`` entry, and each entry's file (or package folder) must be in ``files``."""
    formats, files = manifest.get("formats") or {}, manifest.get("files") or {}
    release = manifest.get("release")
    if not isinstance(formats, dict):
        return ["manifest formats: not a mapping"]
    problems = []
    shipped = release.get("shipped") if isinstance(release, dict) else None
    for name in shipped if isinstance(shipped, list) else []:
        if name not in formats:
            problems.append(f"release ships {name!r}, but the manifest has no formats entry for it")
    for name, entry in formats.items():
        target = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(target, str) or entry_name_problem(target):
            problems.append(f"format {name}: model file {target!r} is not a bundle file name")
        elif target not in files and not any(listed.startswith(target + "/") for listed in files):
            problems.append(f"format {name}: model file {target} is not listed in the manifest")
    return problems


def verify_bundle(bundle_dir: Path) -> list[str]:
    """Problems found, empty when every file matches the manifest and nothing is unlisted.

    Manifest names are checked before they are opened (no absolute paths, no ``..``, no symlinks on the
    way), every file present must be listed (the signature, which signs the manifest, excepted), and a
    gated release must list the model of every format it ships."""
    bundle_dir = Path(bundle_dir)
    manifest_path = bundle_dir / MANIFEST
    if manifest_path.is_symlink():
        return [f"{manifest_path}: is a symlink"]
    if not manifest_path.exists():
        return [f"{manifest_path}: missing"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return [f"{manifest_path}: not valid JSON ({error})"]
    entries = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(entries, dict):
        return [f"{manifest_path}: has no files mapping"]
    problems = []
    listed = set()
    for name, entry in entries.items():
        bad_name = entry_name_problem(name)
        if bad_name:
            problems.append(f"{name!r}: manifest entry refused ({bad_name})")
            continue
        listed.add(name)
        problem = _listed_problem(bundle_dir, name, entry)
        if problem:
            problems.append(problem)
    present, odd = _walk(bundle_dir)
    problems += odd
    problems += [f"{name}: present but not in manifest" for name in sorted(present - listed - {MANIFEST, SIGNATURE})]
    problems += shipped_model_problems(manifest)
    return problems
