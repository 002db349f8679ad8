"""Publish stage: copy the bundle to ``orchestration.publish_url`` (S3 or any fsspec URL) and
verify the copy. Never cached: the destination may have changed since a cached package stage ran,
and re-uploading a verified bundle is cheap next to shipping an unverified one. With a signing key
configured, an unsigned bundle (or one whose signature fails) is refused."""

from __future__ import annotations

import logging
from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.packaging.bundle import BundleResult
from doughflow.packaging.publish import PublishResult, publish_bundle
from doughflow.packaging.signing import UnsignedBundleError, signature_problems_for_key, signing_key_path
from doughflow.release.gates import ReleaseDecision

log = logging.getLogger(__name__)


def publish(config: ExperimentConfig, bundle: BundleResult, decision: ReleaseDecision) -> PublishResult | None:
    """Only released bundles leave the machine: consumers of the published store should never have
    to check a manifest to learn that a model was rejected (it stays in the run folder and registry)."""
    if not config.orchestration.publish_url:
        return None
    if not decision.released:
        log.warning(
            "not publishing %s to %s: the release was rejected", bundle.bundle_dir, config.orchestration.publish_url
        )
        return None
    require_signature(config, Path(bundle.bundle_dir))
    return publish_bundle(Path(bundle.bundle_dir), config.orchestration.publish_url)


def require_signature(config: ExperimentConfig, bundle_dir: Path) -> None:
    """With a signing key configured, only a bundle whose signature verifies with it leaves the machine
    (UnsignedBundleError otherwise): consumers who check signatures never receive one that fails."""
    key = signing_key_path(config.packaging.signing_key)
    if key is None:
        return
    problems = signature_problems_for_key(bundle_dir, key)
    if problems:
        raise UnsignedBundleError(
            f"not publishing {bundle_dir}: signing is configured ({key}) but " + "; ".join(problems)
        )
