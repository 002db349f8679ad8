"""Load a split's shards into tensors for training and evaluation.

The pizza set fits in memory as uint8 (10k images of 64x64 are 120 MB), so the skeleton decodes once
and keeps uint8, converting to float per batch; a streaming loader replaces this for data at scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm import tqdm

from doughflow.config import ExperimentConfig
from doughflow.data.adapters import adapter_for
from doughflow.data.manifest import DataManifest
from doughflow.preprocessing import Preprocessing, preprocessing_for


@dataclass
class ArraySplit:
    ids: list[str]
    images: np.ndarray  # N x H x W x 3 uint8
    targets: np.ndarray  # N x K float32

    def __len__(self) -> int:
        return len(self.ids)


def load_split(
    paths: list[Path],
    *,
    id_column: str,
    image_column: str,
    target_columns: list[str],
    preprocessing: Preprocessing,
    desc: str = "decoding",
) -> ArraySplit:
    ids: list[str] = []
    images: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for path in paths:
        table = pq.read_table(path, columns=[id_column, image_column, *target_columns])
        ids.extend(str(i) for i in table.column(id_column).to_pylist())
        for data in tqdm(
            table.column(image_column).to_pylist(),
            desc=f"{desc} {Path(path).name}",
            leave=False,
            mininterval=2.0,
            disable=None,
        ):
            images.append(preprocessing.decode(data))
        targets.append(np.stack([table.column(c).to_numpy().astype(np.float32) for c in target_columns], axis=1))
    size = preprocessing.image_size
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    labels = np.concatenate(targets) if targets else np.zeros((0, len(target_columns)), np.float32)
    return ArraySplit(ids, stacked, labels)


def load_split_for(config: ExperimentConfig, manifest: DataManifest, desc: str = "decoding") -> ArraySplit:
    """load_split with the columns and preprocessing an experiment config names."""
    data = config.data
    return load_split(
        manifest.paths(),
        id_column=data.id_column,
        image_column=data.image_column,
        target_columns=adapter_for(config).target_columns,
        preprocessing=preprocessing_for(config),
        desc=desc,
    )
