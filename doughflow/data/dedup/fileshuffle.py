"""A shuffle through files: each map task writes one Arrow IPC file with one record batch per
destination part, each reduce task reads its own batch of every map file. Nothing passes through the
Dask scheduler or this process.

Why not a Dask DataFrame shuffle: near-dup moves 20+ small integer rows per document (one per LSH
band), and a p2p shuffle of pandas frames was 70% of near-dup time (measured); as Arrow files on
local disk the same data costs one sort and one write per shard. Memory per reduce task is one
part: about one shard's worth when there are as many parts as shards. Needs a folder every worker
can read (a LocalCluster, or a shared filesystem on a real cluster).

Why a batch per part, read with plain file reads: a reduce task then reads only its own bytes of
each map file. Slicing one big batch of memory-mapped files kept every map file mapped until the
slices were combined, and the pages the kernel faulted in around them counted in the worker's RSS:
at 10M rows (200 map files of 16 MB) one band reduce went from 0.4 to 1 GB for 50 ms, and Dask's
nanny restarted the worker (measured; see benchmarks/dedup.py's RSS timeline).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np
import pyarrow as pa


def part_of(keys: np.ndarray, parts: int) -> np.ndarray:
    """Destination part of each int64 key (already a hash, so the low bits are uniform)."""
    return (keys.view(np.uint64) % np.uint64(parts)).astype(np.int64)


def write_parts(table: pa.Table, part: np.ndarray, parts: int, path: str) -> None:
    """Write ``table`` grouped by ``part`` (stable): record batch ``p`` holds the rows of part ``p``."""
    small = part.astype(np.uint16) if parts <= 1 << 16 else part
    order = np.argsort(small, kind="stable")  # radix sort for 16-bit keys: linear time
    bounds = np.searchsorted(part[order], np.arange(parts + 1)).tolist()
    table = table.take(pa.array(order)) if len(order) else table
    rows = table.combine_chunks().to_batches()
    whole = rows[0] if rows else pa.RecordBatch.from_pylist([], schema=table.schema)
    tmp = f"{path}.tmp"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for p in range(parts):
            writer.write_batch(whole.slice(bounds[p], bounds[p + 1] - bounds[p]))
    os.replace(tmp, path)


def write_sorted_parts(
    rows_of: Callable[[int, int], pa.Table], part: np.ndarray, parts: int, path: str, chunk_rows: int
) -> None:
    """``write_parts`` for rows too big to hold at once: ``part`` is sorted, and ``rows_of(lo, hi)`` builds
    rows lo..hi; consecutive parts are built and written together, about ``chunk_rows`` rows at a time."""
    bounds = np.searchsorted(part, np.arange(parts + 1)).tolist()
    tmp = f"{path}.tmp"
    schema = rows_of(0, 0).schema
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        first = 0
        while first < parts:
            last = first + 1
            while last < parts and bounds[last + 1] - bounds[first] <= chunk_rows:
                last += 1
            lo, hi = bounds[first], bounds[last]
            batches = rows_of(lo, hi).combine_chunks().to_batches()
            whole = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)
            for p in range(first, last):
                writer.write_batch(whole.slice(bounds[p] - lo, bounds[p + 1] - bounds[p]))
            first = last
    os.replace(tmp, path)


def read_part(paths: list[str], part: int, columns: list[str] | None = None) -> pa.Table | None:
    """Rows of ``part`` from every map file (None when there are no map files)."""
    pieces = []
    for path in paths:
        with pa.OSFile(path) as source:
            batch = pa.ipc.open_file(source).get_batch(part)
        if columns is not None:
            batch = batch.select(columns)
        pieces.append(batch)
    if not pieces:
        return None
    return pa.Table.from_batches(pieces).combine_chunks()


# numpy parses an .npy header with ast.literal_eval, and CPython 3.11's AST constructor is not
# thread-safe: two Dask worker threads reading arrays at once failed a CI run with "SystemError: AST
# constructor recursion depth mismatch". Reads of our small npz side files take turns.
_NPZ_LOCK = threading.Lock()


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file written by the driver (edges, component graphs), read whole."""
    with _NPZ_LOCK, np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}
