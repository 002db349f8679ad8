"""Split stage: train/val/test by customer, with near-duplicate components kept together."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SplitResult, split_by_group
from doughflow.data.dedup.subsample import DUP_GROUP
from doughflow.runs import RunPaths


def split(config: ExperimentConfig, paths: RunPaths, deduped: DataManifest) -> SplitResult:
    fractions = (config.split.train, config.split.val, config.split.test)
    return split_by_group(deduped, paths.stage("data/split"), group_column=config.data.group_column,
                          seed=config.split.seed, fractions=fractions, link_column=DUP_GROUP)
