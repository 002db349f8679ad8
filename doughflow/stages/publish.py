"""Publish stage: copy the bundle to ``orchestration.publish_url`` (S3 or any fsspec URL) and
verify the copy. Never cached: the destination may have changed since a cached package stage ran,
and re-uploading a verified bundle is cheap next to shipping an unverified one."""

from __future__ import annotations

from pathlib import Path

import logging

from doughflow.config import ExperimentConfig
from doughflow.release.gates import ReleaseDecision
from doughflow.packaging.bundle import BundleResult
from doughflow.packaging.publish import PublishResult, publish_bundle


log = logging.getLogger(__name__)


def publish(config: ExperimentConfig, bundle: BundleResult, decision: ReleaseDecision) -> PublishResult | None:
    """Only released bundles leave the machine: consumers of the published store should never have
    to check a manifest to learn that a model was rejected (it stays in the run folder and registry)."""
    if not config.orchestration.publish_url:
        return None
    if not decision.released:
        log.warning("not publishing %s to %s: the release was rejected", bundle.bundle_dir, config.orchestration.publish_url)
        return None
    return publish_bundle(Path(bundle.bundle_dir), config.orchestration.publish_url)
