"""Run identity and the folder layout of one run, so every stage agrees on where things live."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


def new_run_id(experiment: str, flow_run_id: str | None = None) -> str:
    """Inside a Prefect flow run the id derives from the (root) flow run's, so a retry of that flow
    run (``prefect flow-run retry``) writes into the same folder and resumes from its checkpoints."""
    if flow_run_id:
        return f"{experiment}-{flow_run_id.replace('-', '')[:12]}"
    return f"{experiment}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunPaths:
    """artifacts/<run-id>/{data,train,eval,export,report,bundle}; shared datasets sit beside runs."""

    artifacts_dir: Path
    run_id: str
    started_at: float = field(default=0.0, compare=False)  # time.time() when the run started

    @property
    def run_dir(self) -> Path:
        return self.artifacts_dir / self.run_id

    @property
    def datasets_dir(self) -> Path:
        return self.artifacts_dir / "datasets"

    def stage(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / "bundle"
