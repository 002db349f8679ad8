"""Run identity and the folder layout of one run, so every stage agrees on where things live.

A run id names a folder under ``artifacts_dir``, and it arrives from the command line, a deployment
parameter or a Python call: it is checked against one pattern before any work (no separators, no
``..``, no leading dot or dash, at most 128 characters), so that ``--run-id ../../etc`` is refused by
name rather than resolved. The folders a run writes are then resolved and checked to lie inside the
artifacts folder, which also catches a run folder that is a symlink to elsewhere.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from doughflow.paths import inside

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
# Folders beside the runs that a run id must not take over.
RESERVED_RUN_IDS = frozenset({"datasets", "tune"})
_RUN_ID = re.compile(RUN_ID_PATTERN)


class InvalidRunIdError(ValueError):
    """A run id that could name a path outside its run folder (or another folder of the artifacts)."""


def check_run_id(run_id: str) -> str:
    """``run_id`` unchanged when it is safe as one folder name; else InvalidRunIdError saying why."""
    if not isinstance(run_id, str):
        raise InvalidRunIdError(f"run id must be a string, got {type(run_id).__name__}")
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidRunIdError(
            f"run id {run_id!r} must match {RUN_ID_PATTERN} (letters, digits, '_', '.', '-'; "
            "starting with a letter or digit; at most 128 characters)"
        )
    if ".." in run_id:
        raise InvalidRunIdError(f"run id {run_id!r} must not contain '..'")
    if run_id in RESERVED_RUN_IDS:
        raise InvalidRunIdError(f"run id {run_id!r} is reserved for the artifacts folder's {run_id}/ folder")
    return run_id


# The flows' ``run_id`` parameter type: Prefect validates flow parameters with pydantic before the run
# starts, so a Python call with a path-like id fails before any task runs; the pattern (with the ".."
# rule as a look-ahead) is in the flow's parameter schema, which the Prefect server enforces when a
# deployment run is created.
RunId = Annotated[
    str,
    AfterValidator(check_run_id),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 128,
            "pattern": r"^(?!.*\.\.)(?!(?:" + "|".join(sorted(RESERVED_RUN_IDS)) + r")$)" + RUN_ID_PATTERN[1:],
            "description": "A run folder name under artifacts_dir: letters, digits, '_', '.', '-', no '..'",
        }
    ),
]


def new_run_id(experiment: str, flow_run_id: str | None = None) -> str:
    """Inside a Prefect flow run the id derives from the (root) flow run's, so a retry of that flow
    run (``prefect flow-run retry``) writes into the same folder and resumes from its checkpoints."""
    if flow_run_id:
        return check_run_id(f"{experiment}-{flow_run_id.replace('-', '')[:12]}")
    return check_run_id(f"{experiment}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}")


@dataclass(frozen=True)
class RunPaths:
    """artifacts/<run-id>/{data,train,eval,export,report,bundle}; shared datasets sit beside runs."""

    artifacts_dir: Path
    run_id: str
    started_at: float = field(default=0.0, compare=False)  # time.time() when the run started

    def __post_init__(self) -> None:
        check_run_id(self.run_id)

    @property
    def run_dir(self) -> Path:
        return self.artifacts_dir / self.run_id

    @property
    def datasets_dir(self) -> Path:
        return self.artifacts_dir / "datasets"

    def stage(self, name: str) -> Path:
        """The run's folder ``name`` (e.g. ``data/raw``), created; refused when it resolves outside the
        artifacts folder (a symlinked run or stage folder)."""
        path = self.run_dir / name
        inside(self.artifacts_dir, path)
        path.mkdir(parents=True, exist_ok=True)
        inside(self.artifacts_dir, path)  # again: a link planted between the check and the mkdir
        return path

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / "bundle"
