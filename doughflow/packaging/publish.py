"""Publish a bundle to an fsspec URL (s3://bucket/bundles, a mounted share...) for consumers that
cannot reach the machine that trained it.

Files are copied first (the signature, when there is one, after them) and ``manifest.json`` last, so
a manifest at the destination means a complete bundle. The copy is then read back and every object's SHA-256 checked against the manifest: a
publish that reports success is one a consumer can verify.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

import fsspec

from doughflow.data.manifest import stream_sha256
from doughflow.packaging.bundle import MANIFEST, SIGNATURE, verify_bundle
from doughflow.runs import InvalidRunIdError, check_run_id


class PublishError(RuntimeError):
    pass


@dataclass(frozen=True)
class PublishResult:
    url: str  # the bundle's folder at the destination
    files: int  # objects verified, the manifest included


def published_problems(url: str) -> list[str]:
    """What differs between the bundle at ``url`` and its own manifest; empty when intact."""
    fs, root = fsspec.core.url_to_fs(url)
    manifest_path = f"{root}/{MANIFEST}"
    if not fs.exists(manifest_path):
        return [f"{url}/{MANIFEST}: missing"]
    manifest = json.loads(fs.cat_file(manifest_path))
    problems = []
    for name, entry in manifest["files"].items():
        path = f"{root}/{name}"
        if not fs.exists(path):
            problems.append(f"{url}/{name}: listed in the manifest but missing")
            continue
        with fs.open(path, "rb") as handle:
            if stream_sha256(handle) != entry["sha256"]:
                problems.append(f"{url}/{name}: sha256 differs from the manifest")
    return problems


def publish_bundle(bundle_dir: Path, destination: str) -> PublishResult:
    """Copy ``bundle_dir`` to ``<destination>/<run id>/`` and verify the copy. The run id is the one
    in the manifest (the run that built the bundle), so a rerun served from the cache publishes to
    the same place again instead of a second copy under its own id."""
    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / MANIFEST).read_text())
    try:  # the folder name at the destination comes from the manifest: never a path
        run_id = check_run_id(manifest.get("run_id"))
    except InvalidRunIdError as error:
        raise PublishError(f"{bundle_dir / MANIFEST}: {error}") from None
    url = f"{destination.rstrip('/')}/{run_id}"
    fs, root = fsspec.core.url_to_fs(url)
    problems = verify_bundle(bundle_dir)
    if problems:  # never upload a bundle whose files or manifest entries do not check out locally
        raise PublishError(f"{bundle_dir} does not verify, not publishing: " + "; ".join(problems))
    for name in sorted(manifest["files"]):
        fs.makedirs(posixpath.dirname(f"{root}/{name}"), exist_ok=True)
        fs.put_file(str(bundle_dir / name), f"{root}/{name}")
    if (bundle_dir / SIGNATURE).is_file():
        fs.put_file(str(bundle_dir / SIGNATURE), f"{root}/{SIGNATURE}")
    fs.put_file(str(bundle_dir / MANIFEST), f"{root}/{MANIFEST}")
    if json.loads(fs.cat_file(f"{root}/{MANIFEST}")) != manifest:
        raise PublishError(f"{url}/{MANIFEST}: read back differs from {bundle_dir / MANIFEST}")
    problems = published_problems(url)
    if problems:
        raise PublishError("published bundle does not match its manifest: " + "; ".join(problems))
    return PublishResult(url=url, files=len(manifest["files"]) + 1 + int((bundle_dir / SIGNATURE).is_file()))
