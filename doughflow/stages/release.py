"""Release stage: gate every format, then (after packaging) refuse a rejected release loudly."""

from __future__ import annotations

import json

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import problem_of
from doughflow.export.formats import DeployResult
from doughflow.packaging.bundle import BundleResult
from doughflow.release.gates import ReleaseDecision, ReleaseRejected, accuracy_gate, decide_release, metric_gates
from doughflow.runs import RunPaths
from doughflow.stages.behaviour import BehaviourResult
from doughflow.stages.evaluate import EvaluationResult


def release_gates(
    config: ExperimentConfig,
    paths: RunPaths,
    evaluated: EvaluationResult,
    formats: DeployResult,
    behaviour: BehaviourResult,
) -> ReleaseDecision:
    skips = dict(behaviour.skipped)
    if not config.release.properties.enabled:
        skips = {}
    gates = (
        [accuracy_gate(evaluated.metrics, config.evaluate.min_exact_count_accuracy)]
        if problem_of(config) == "count"
        else []
    )
    gates += metric_gates(evaluated.metrics, config.evaluate.min_metrics)
    decision = decide_release(formats.formats, gates, behaviour.results, skips)
    (paths.stage("export") / "release.json").write_text(json.dumps(decision.to_json(), indent=2))
    return decision


def enforce_release(decision: ReleaseDecision, bundle: BundleResult) -> None:
    """Fail the run when the release was rejected; the bundle stays for inspection, marked rejected."""
    if not decision.released:
        raise ReleaseRejected(
            f"release rejected, bundle {bundle.bundle_dir} marked rejected: " + " | ".join(decision.reasons)
        )
