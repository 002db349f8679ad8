"""CPU seconds per phase of the text near-dup stage, run in this one process (no Dask), so the
figures hold on a machine shared with other work: sketch (read, normalise, MinHash, shuffle files),
exact dedup, LSH band reduce, exact verification (map and reduce), components, write.

    python benchmarks/dedup_phases.py --corpus /tmp/doughflow-bench/text-1000000-50000 --shards 4

The corpus is one that benchmarks/dedup.py generated (Parquet shards with doc_id and text).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--work", default="/tmp/doughflow-phases")
    args = parser.parse_args(argv)

    from doughflow.config import SubsampleConfig
    from doughflow.data.dedup import reduce as R
    from doughflow.data.dedup import textverify
    from doughflow.data.dedup.sketch import sketch_shard
    from doughflow.data.dedup.subsample import _group_index, filter_shard, spec_for
    from doughflow.data.dedup.textsettings import resolve_text
    from tests.support.dedup_reference import component_removals

    paths = sorted(str(p) for p in Path(args.corpus).glob("part-*.parquet"))[: args.shards]
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = SubsampleConfig.model_validate(
        {
            "max_per_id": None,
            "cluster": {"max_per_cluster": None},
            "near_dup": {"kind": "text", "threshold": 0.7, "verify": "exact", "shingle": "word", "shingle_size": 3},
        }
    )
    near = cfg.near_dup
    text = resolve_text(near, None)
    spec = spec_for(cfg, "doc_id", "customer_id", "image", parts=len(paths), text=text)
    sketch_shard(paths[0], str(work / "warm.parquet"), spec)  # load the compiled kernels first
    cpu: dict[str, tuple[float, float]] = {}

    def phase(name: str, fn: Callable[[], T]) -> T:
        c, w = time.process_time(), time.perf_counter()
        out = fn()
        cpu[name] = (time.process_time() - c, time.perf_counter() - w)
        return out

    sketches = [str(work / f"sketch-{i:05d}.parquet") for i in range(len(paths))]
    parts = len(paths)
    rows = sum(n for n, _ in phase("sketch", lambda: [sketch_shard(p, s, spec) for p, s in zip(paths, sketches)]))
    keys = phase(
        "exact_dedup",
        lambda: [
            R.exact_part([f"{s}.exact.arrow" for s in sketches], p, str(work / f"exact-{p}.parquet"))
            for p in range(parts)
        ],
    )
    removed = np.sort(np.concatenate(keys))
    edges = phase(
        "lsh_bands", lambda: [R.band_part([f"{s}.bands.arrow" for s in sketches], p, removed) for p in range(parts)]
    )
    a, b = np.concatenate([x for x, _ in edges]), np.concatenate([y for _, y in edges])
    np.savez(work / "edges.npz", a=a, b=b, ends=np.unique(np.concatenate([a, b])))
    maps = [str(work / f"ends-{i:05d}.arrow") for i in range(parts)]
    phase(
        "verify_map",
        lambda: [
            textverify.endpoint_shingles(
                p,
                m,
                id_column="doc_id",
                text_column="text",
                edges_path=str(work / "edges.npz"),
                parts=parts,
                kind=text.shingle,
                size=text.shingle_size,
                short_chars=0,
            )
            for p, m in zip(paths, maps)
        ],
    )
    verified = phase("verify_reduce", lambda: pd.concat([textverify.verify_part(maps, p, 0) for p in range(parts)]))
    verified = verified[verified["score"] >= text.threshold]
    near_removed, groups = phase("components", lambda: component_removals(verified, near.keep_per_component))
    gone = np.sort(np.concatenate([removed, near_removed["key"].to_numpy(np.int64)]))
    index = _group_index(groups)
    phase(
        "write",
        lambda: [
            filter_shard(p, s, str(work / f"out-{i:05d}.parquet"), "doc_id", gone, index, None)
            for i, (p, s) in enumerate(zip(paths, sketches))
        ],
    )
    total = sum(c for c, _ in cpu.values())
    print(
        f"rows {rows}, candidate edges {len(a)}, verified {len(verified)}, exact removed {len(removed)}, "
        f"near removed {len(near_removed)}"
    )
    for name, (c, w) in cpu.items():
        print(f"{name:14s} cpu {c:7.2f} s  wall {w:7.2f} s  {c / rows * 1e6:6.1f} us/row")
    print(
        f"total cpu {total:.2f} s: {rows / total:.0f} docs/s per core; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    shutil.rmtree(work, ignore_errors=True)
    return {name: c for name, (c, _) in cpu.items()}


if __name__ == "__main__":
    main()
