"""Small pizza shard sets for tests and the throughput benchmark, drawn by the built-in generator.

Drawn, not downloaded: the benchmark must run on a bare GPU machine with nothing but its own code.
"""

from __future__ import annotations

from pathlib import Path

from doughflow.config import PizzaGeneratorConfig
from doughflow.data.synthetic.pizza import generate_pizza_dataset
from doughflow.training.streaming import Columns, ShardRef, file_sha256

DEFAULT_LABELS = ["pepperoni", "mushroom", "olive", "basil", "pepper"]


def pizza_shards(
    out_dir: Path,
    num_images: int,
    *,
    image_size: int = 64,
    rows_per_shard: int = 500,
    labels: list[str] | None = None,
    seed: int = 7,
    workers: int | None = 1,
) -> list[ShardRef]:
    """Clean shards (no duplicates or corrupt rows) with the pipeline's column names."""
    labels = labels or DEFAULT_LABELS
    config = PizzaGeneratorConfig(
        num_images=num_images,
        exact_duplicate_rate=0.0,
        near_duplicate_rate=0.0,
        corrupt_rows=0,
        seed=seed,
        num_customers=max(3, num_images // 10),
    )
    paths = generate_pizza_dataset(
        config, labels, Path(out_dir), image_size=image_size, rows_per_shard=rows_per_shard, workers=workers
    )
    import pyarrow.parquet as pq

    return [ShardRef(str(p), pq.ParquetFile(p).metadata.num_rows, file_sha256(str(p))) for p in paths]


def pizza_columns(labels: list[str] | None = None) -> Columns:
    return Columns("sample_id", "image", tuple(f"count_{label}" for label in (labels or DEFAULT_LABELS)))
