"""What checking a cached stage's result record costs (doughflow.orchestration.results.read_trusted).

Every cached stage's cache lookup reads its record once through read_trusted before Prefect does.
Records are built like the pipeline's: a fetch manifest with many shards, a training result with a
per-step loss history. ``python benchmarks/result_records.py [--shards N] [--steps N]``; prints a
table and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from prefect.results import ResultStore

from doughflow.data.manifest import DataManifest, ShardInfo
from doughflow.data.split import SplitResult
from doughflow.orchestration.results import RESULT_SERIALIZER, TrustedLocalFileSystem, read_trusted
from doughflow.training.job import TrainResult


def samples(shards: int, steps: int) -> dict[str, Any]:
    manifest = DataManifest(
        "s3://bucket/source",
        "f" * 64,
        shards * 2000,
        [ShardInfo(f"/artifacts/run/data/raw/part-{i:05d}.parquet", 2000, 1 << 20, "a" * 64) for i in range(shards)],
        ["sample_id", "image"],
    )
    history = {
        "step_loss": [1.0 / (i + 1) for i in range(steps)],
        "epoch": [{"epoch": e, "train_loss": 0.1, "val_mae": 0.2} for e in range(16)],
    }
    return {
        "fetch (DataManifest)": manifest,
        "split (SplitResult)": SplitResult(
            {"train": manifest, "val": manifest, "test": manifest},
            {"train": 1, "val": 1, "test": 1},
            {"train": 1, "val": 1, "test": 1},
        ),
        "train (TrainResult)": TrainResult("/m.pt", "/h.json", "/ds.json", 16, 0, 1.0, 0.1, 12, 141.0, 185.0, history),
    }


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(result_storage=TrustedLocalFileSystem(basepath=folder), serializer=RESULT_SERIALIZER)
        for name, value in samples(args.shards, args.steps).items():
            key = name.split()[0]
            store.persist_result_record(store.create_result_record(value, key=key))
            raw = (Path(folder) / key).read_bytes()
            start = time.perf_counter()
            read_trusted(raw, key)  # the first of its type also builds the pydantic adapter
            first = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            for _ in range(args.repeats):
                read_trusted(raw, key)
            rows[name] = {
                "bytes": len(raw),
                "first_ms": round(first, 2),
                "ms": round((time.perf_counter() - start) / args.repeats * 1e3, 3),
            }
    print(f"{'record':24s} {'bytes':>9s} {'first ms':>9s} {'ms':>8s}")
    for name, row in rows.items():
        print(f"{name:24s} {row['bytes']:9d} {row['first_ms']:9.2f} {row['ms']:8.3f}")
    result = {"records": rows, "shards": args.shards, "steps": args.steps}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
