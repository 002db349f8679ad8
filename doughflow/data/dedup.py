"""Exact dedup: one row per distinct image content, keeping the lowest stable id.

Only the (id, hash) columns are read to decide, so memory grows with the row count, not the image
bytes; the shards are then filtered one at a time. Choosing the minimum id (not "first seen") makes
the result independent of shard order and partitioning. Every removed row is recorded with the id
that was kept in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.data.fetch import DataManifest, ShardInfo, file_sha256
from doughflow.data.validate import CONTENT_HASH


@dataclass
class DedupResult:
    manifest: DataManifest
    removed_path: str
    rows_in: int
    rows_out: int
    rows_removed: int
    label_conflicts: int


def keep_lowest_id(ids: pa.Array, hashes: pa.Array) -> pa.Table:
    """For each row, the id kept for its content: the minimum id among rows with the same hash."""
    table = pa.table({"id": ids, "hash": hashes})
    kept = table.group_by("hash").aggregate([("id", "min")]).rename_columns(["hash", "kept_id"])
    return table.join(kept, "hash").select(["id", "kept_id"])


def exact_dedup(manifest: DataManifest, out_dir: Path, *, id_column: str, target_columns: list[str]) -> DedupResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = [id_column, CONTENT_HASH, *target_columns]
    keys = pa.concat_tables([pq.read_table(path, columns=columns) for path in manifest.paths()])
    ids = pc.cast(keys.column(id_column), pa.string()).combine_chunks()
    mapping = keep_lowest_id(ids, keys.column(CONTENT_HASH).combine_chunks())
    kept_by_id = dict(zip(mapping.column("id").to_pylist(), mapping.column("kept_id").to_pylist()))

    # Copies whose labels disagree with the kept row are worth a count in the report: they point at
    # labelling noise, and dedup silently picks one of the labels.
    labels_by_id = {i: tuple(row) for i, row in zip(ids.to_pylist(), zip(*(keys.column(c).to_pylist() for c in target_columns)))}
    conflicts = sum(1 for i, k in kept_by_id.items() if i != k and labels_by_id[i] != labels_by_id[k])

    shards: list[ShardInfo] = []
    removed_tables: list[pa.Table] = []
    for index, path in enumerate(manifest.paths()):
        table = pq.read_table(path)
        shard_ids = pc.cast(table.column(id_column), pa.string()).to_pylist()
        kept_ids = [kept_by_id[i] for i in shard_ids]
        keep = pa.array([i == k for i, k in zip(shard_ids, kept_ids)])
        out = out_dir / f"part-{index:05d}.parquet"
        pq.write_table(table.filter(keep), out)
        shards.append(ShardInfo(str(out), pq.read_metadata(out).num_rows, out.stat().st_size, file_sha256(out)))
        dropped = [(i, k) for i, k in zip(shard_ids, kept_ids) if i != k]
        if dropped:
            removed_tables.append(pa.table({
                "id": [i for i, _ in dropped],
                "reason": ["exact_duplicate"] * len(dropped),
                "kept_id": [k for _, k in dropped],
                "source_file": [str(path)] * len(dropped),
            }))
    removed_path = out_dir / "removed.parquet"
    schema = pa.schema([("id", pa.string()), ("reason", pa.string()), ("kept_id", pa.string()), ("source_file", pa.string())])
    pq.write_table(pa.concat_tables(removed_tables) if removed_tables else schema.empty_table(), removed_path)
    rows_out = sum(s.rows for s in shards)
    result_manifest = DataManifest(manifest.source, manifest.fingerprint, rows_out, shards, manifest.columns)
    result_manifest.save(out_dir / "manifest.json")
    return DedupResult(result_manifest, str(removed_path), keys.num_rows, rows_out, keys.num_rows - rows_out, conflicts)
