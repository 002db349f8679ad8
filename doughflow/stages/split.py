"""Split stage: train/val/test by customer, with near-duplicate components kept together (by component
alone when the data has no group column)."""

from __future__ import annotations

from doughflow.config import ExperimentConfig
from doughflow.data.columns import groups_in
from doughflow.data.dedup.subsample import DUP_GROUP
from doughflow.data.manifest import DataManifest
from doughflow.data.split import SplitResult, split_by_group
from doughflow.runs import RunPaths


def split(config: ExperimentConfig, paths: RunPaths, deduped: DataManifest) -> SplitResult:
    fractions = (config.split.train, config.split.val, config.split.test)
    return split_by_group(
        deduped,
        paths.stage("data/split"),
        group_column=groups_in(deduped, config.data.group_column),
        seed=config.split.seed,
        fractions=fractions,
        link_column=DUP_GROUP,
        id_column=config.data.id_column,
    )
