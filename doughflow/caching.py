"""Stage cache keys: what a stage's output depends on, hashed.

A stage is skipped on a rerun when its key matches a persisted result. The key holds exactly the
inputs that matter: the stage's name and code version, the config sections the stage reads, the
content of its upstream results (which carry data fingerprints and content-keyed paths), and what
else its output depends on: the source of user modules the config names (an edited adapter or model
module under an unchanged config must not be served from the cache) and the versions of the
libraries that compute it (an upgraded torch or onnxruntime can change every number). The run id
is deliberately absent - it is what makes Prefect's default policy never hit across runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from doughflow.config import ExperimentConfig

PACKAGE_ROOTS = ("doughflow", "tasks")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the pipeline's own source: any code change invalidates every cached stage, which is
    conservative but never serves a result that the current code would not produce."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in PACKAGE_ROOTS:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def canonical(value: Any) -> Any:
    """A JSON-able, order-stable view of configs, dataclasses and containers."""
    if isinstance(value, BaseModel):
        return canonical(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "__type__": type(value).__name__,
            **{f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda item: str(item[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:  # NaN is not equal to itself
        return "NaN"
    return value


def select(config: ExperimentConfig, sections: tuple[str, ...]) -> dict:
    """The named (dotted) config sections; "*" means the whole config."""
    if "*" in sections:
        return canonical(config)
    dumped = config.model_dump(mode="json")
    picked = {}
    for dotted in sections:
        node: Any = dumped
        for part in dotted.split("."):
            node = node[part]
        picked[dotted] = node
    return canonical(picked)


def covers(sections: tuple[str, ...], dotted: str) -> bool:
    """Whether reading config field ``dotted`` is inside ``sections`` ("*", the field, or a section above it)."""
    return any(s == "*" or dotted == s or dotted.startswith(s + ".") for s in sections)


def module_source_hash(name: str) -> str:
    """SHA-256 of a user module's source, found without importing it: the module's file, or every .py
    file of a package. A module that cannot be found hashes as such (the stage then fails naming it)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return f"not found: {name}"
    digest = hashlib.sha256()
    roots = [Path(p) for p in (spec.submodule_search_locations or [])]
    files = (
        sorted(p for root in roots for p in root.rglob("*.py"))
        if roots
        else [Path(spec.origin)]
        if spec.origin and Path(spec.origin).is_file()
        else []
    )
    for path in files:
        digest.update(path.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:24] if files else f"no source: {name}"


# Config fields that name user code: a change to that code changes what the stages reading them produce.
USER_MODULE_FIELDS = ("data.import_module", "train.model.import_module")


def user_module_sources(config: ExperimentConfig, sections: tuple[str, ...]) -> dict[str, str]:
    """Field -> source hash of the module it names, for the fields ``sections`` cover."""
    dumped = config.model_dump(mode="json")
    out = {}
    for dotted in USER_MODULE_FIELDS:
        node: Any = dumped
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node and covers(sections, dotted):
            out[dotted] = module_source_hash(str(node))
    return out


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed version of each library whose output a stage depends on ("absent" when not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def stage_key(
    stage: str,
    config: ExperimentConfig,
    sections: tuple[str, ...],
    upstream: dict[str, Any],
    environment: dict[str, Any] | None = None,
) -> str:
    """``environment``: what else the output depends on (library versions, user module sources, the
    signing key's fingerprint), as :func:`doughflow.orchestration.stage_tasks.stage_environment` builds it."""
    payload = {
        "stage": stage,
        "code": code_version(),
        "config": select(config, sections),
        "upstream": canonical(upstream),
        "environment": canonical(environment or {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def missing_outputs(result: Any, roots: tuple[str, ...]) -> list[str]:
    """Paths under ``roots`` (the artifact folders) that a cached result names but that are gone.
    A cached result points at the files of the run that computed it; once someone deletes that
    run's folder, serving the result would hand later stages paths to nothing."""
    prefixes = tuple(root.rstrip("/") + "/" for root in roots)
    missing: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.startswith(prefixes) and not Path(value).exists():
            missing.append(value)

    walk(canonical(result))
    return missing
