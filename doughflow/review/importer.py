"""Importing human verdicts on a run's review packet: check them against the packet, store them in
the run registry, put every stored verdict through the review gate, and write the outcome into the
bundle's manifest and model card (``python -m flows.review`` is the command line over this). With MLflow
tracking on, the outcome also becomes the ``review`` tag of the run's MLflow run and registered versions."""

from __future__ import annotations

import json
import time
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.experiment import load_experiment
from doughflow.packaging.bundle import MANIFEST
from doughflow.packaging.signing import signing_key_path
from doughflow.paths import PathEscapeError, inside
from doughflow.registry import load_verdicts, record_verdicts
from doughflow.review.approval import review_gate, write_approval
from doughflow.review.labelled import export_labelled
from doughflow.review.packet import load_packet
from doughflow.review.verdicts import Verdict, agreement, read_verdicts
from doughflow.runs import InvalidRunIdError, check_run_id
from doughflow.tracking.mlflow_run import set_review_state
from doughflow.tracking.store import TrackingError


def resolve_bundle(target: str, artifacts: Path) -> Path:
    """A bundle folder, a run folder, or a run id under ``artifacts``: the bundle folder it means. Only
    a plain run id is looked up under ``artifacts`` (``../x`` is a path the caller gave, not an id)."""
    candidates = [Path(target), Path(target) / "bundle"]
    try:
        candidates.append(artifacts / check_run_id(target) / "bundle")
    except InvalidRunIdError:
        pass
    for candidate in candidates:
        if (candidate / MANIFEST).exists():
            return candidate
    raise FileNotFoundError(f"{target}: not a bundle folder, a run folder or a run id under {artifacts}")


def registry_for(bundle: Path, configured: str | None, given: Path | None) -> Path:
    """The registry the verdicts go to: ``--registry``, else the bundle config's ``registry_path`` only
    when it lies inside the bundle's artifacts folder (a bundle's own config must not pick where we
    write), else ``<artifacts>/registry.sqlite``."""
    if given is not None:
        return Path(given)
    artifacts = bundle.parent.parent
    if configured:
        try:
            return inside(artifacts, configured)
        except PathEscapeError as error:
            raise PathEscapeError(
                f"the bundle's config.yaml names registry_path {configured}: {error}; "
                "pass --registry to choose the registry"
            ) from None
    return artifacts / "registry.sqlite"


def import_review(
    bundle: Path,
    verdicts_file: Path | None,
    reviewer: str,
    registry: Path | None = None,
    labelled_out: Path | None = None,
    signing_key: Path | None = None,
) -> dict:
    """The whole import, as a function the CLI and tests call; raises VerdictError on a bad file.
    ``signing_key`` re-signs a signed bundle after the approval (default: DOUGHFLOW_SIGNING_KEY)."""
    config = load_experiment(bundle / "config.yaml", [])
    run_id = json.loads((bundle / MANIFEST).read_text())["run_id"]
    registry = registry_for(bundle, config.registry_path, registry)
    signing_key = signing_key or signing_key_path(None)
    review_dir = bundle.parent / "review"
    packet = load_packet(review_dir)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    imported = 0
    if verdicts_file is not None:
        verdicts = read_verdicts(verdicts_file, packet, reviewer)
        imported = record_verdicts(
            registry,
            run_id,
            [
                {
                    "sample_id": v.sample_id,
                    "reviewer": v.reviewer,
                    "verdict": v.verdict,
                    "corrected": v.corrected,
                    "comment": v.comment,
                    "reviewed_at": now,
                    "source_file": str(verdicts_file),
                }
                for v in verdicts
            ],
        )
    stored = load_verdicts(registry, run_id)
    figures = agreement(
        [Verdict(r["sample_id"], r["verdict"], r["corrected"], r["comment"], r["reviewer"]) for r in stored], packet
    )
    approval = review_gate(
        figures, config.review.gate, reviewed_at=max((r["reviewed_at"] for r in stored), default=now)
    )
    write_approval(bundle, approval, signing_key)
    result = {
        "run_id": run_id,
        "bundle": str(bundle),
        "imported": imported,
        "registry": str(registry),
        "agreement": figures,
        "review": approval["status"],
        "approved": approval["approved"],
        "reasons": approval["reasons"],
    }
    if config.tracking.mlflow.enabled:
        result["mlflow"] = mirror_review(config, bundle, run_id, approval)
    if labelled_out is not None:
        data = config.data
        result["labelled"] = {
            "path": str(labelled_out),
            "rows": export_labelled(
                review_dir,
                packet,
                stored,
                labelled_out,
                id_column=data.id_column,
                image_column=data.image_column,
                group_column=data.group_column,
                target_prefix=data.target_prefix,
            ),
        }
    return result


def mirror_review(config: ExperimentConfig, bundle: Path, run_id: str, approval: dict) -> dict:
    """Set the review tag in MLflow; what happened, as a dict for the command's JSON line. The verdicts
    are stored whatever MLflow says, so a failure is reported, not raised: rerunning the import without a
    verdict file sets the tag again."""
    # A run logged to the default store has it in its artifacts folder: the bundle's grandparent.
    uri = config.model_copy(update={"artifacts_dir": str(bundle.resolve().parent.parent)}).mlflow_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        return {"skipped": f"no MLflow store at {uri} (the run was not tracked there)"}
    experiment = config.tracking.mlflow.experiment or config.name
    try:
        return {"tagged": set_review_state(uri, experiment, run_id, approval)}
    except TrackingError as error:
        return {"error": f"{error}; the verdicts are stored: rerun without a verdict file to set the tag again"}
