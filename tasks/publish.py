"""Publish stage: copy the bundle to ``orchestration.publish_url`` (S3 or any fsspec URL) and
verify the copy. Never cached: the destination may have changed since a cached package stage ran,
and re-uploading a verified bundle is cheap next to shipping an unverified one."""

from __future__ import annotations

from pathlib import Path

from doughflow.config import ExperimentConfig
from doughflow.packaging.bundle import BundleResult
from doughflow.packaging.publish import PublishResult, publish_bundle
from tasks.common import io_task


def publish(config: ExperimentConfig, bundle: BundleResult) -> PublishResult | None:
    if not config.orchestration.publish_url:
        return None
    return publish_bundle(Path(bundle.bundle_dir), config.orchestration.publish_url)


publish_bundle_task = io_task(name="publish-bundle")(publish)
