"""The release bundle: everything a consumer needs to run the model, nothing of our code.

manifest.json is written last and lists the SHA-256 and size of every other file, with the data
fingerprint, config hash, git commit and library versions: a bundle is verifiable on its own.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from doughflow.data.manifest import file_sha256

MANIFEST = "manifest.json"
TRACKED_LIBRARIES = ("doughflow", "torch", "deepspeed", "onnx", "onnxruntime", "prefect", "pyarrow", "numpy", "pydantic")


def git_commit(repo: Path | None = None) -> dict:
    """The commit the code came from, and whether the tree had uncommitted changes."""
    cwd = str(repo or Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, check=True).stdout.strip())
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


def build_bundle(bundle_dir: Path, *, files: dict[str, Path], documents: dict[str, dict | list | str],
                 run_id: str, data_fingerprint: str, config_hash: str, extra: dict | None = None) -> BundleResult:
    """Copy ``files`` (bundle name -> source path), write ``documents`` (name -> JSON or text), then
    hash everything into the manifest."""
    if bundle_dir.exists():
        shutil.rmtree(bundle_dir)
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


def verify_bundle(bundle_dir: Path) -> list[str]:
    """Problems found, empty when every file matches the manifest and nothing is unlisted."""
    bundle_dir = Path(bundle_dir)
    manifest_path = bundle_dir / MANIFEST
    if not manifest_path.exists():
        return [f"{manifest_path}: missing"]
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        return [f"{manifest_path}: not valid JSON ({error})"]
    problems = []
    for name, entry in manifest.get("files", {}).items():
        path = bundle_dir / name
        if not path.exists():
            problems.append(f"{name}: listed in manifest but missing")
            continue
        if path.stat().st_size != entry["bytes"]:
            problems.append(f"{name}: size {path.stat().st_size} != manifest {entry['bytes']}")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from manifest")
    listed = set(manifest.get("files", {}))
    for path in bundle_dir.rglob("*"):
        name = path.relative_to(bundle_dir).as_posix()
        if path.is_file() and name != MANIFEST and name not in listed:
            problems.append(f"{name}: present but not in manifest")
    return problems
