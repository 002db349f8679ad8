"""Leakage-safe splits: a customer's orders all land in one split.

The split of a group is a pure function of (seed, group id): hashing instead of shuffling keeps a
customer in the same split when new data arrives, and makes the split independent of row order.
Data without groups is split by near-duplicate component: the rows of one component (named by the
component) go together, every other row alone (named by its id), so no near-copy of a test row is
trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.data.manifest import DataManifest, ShardInfo, file_sha256

SPLITS = ("train", "val", "test")


@dataclass
class SplitResult:
    manifests: dict[str, DataManifest]
    rows: dict[str, int]
    groups: dict[str, int]
    leaked_groups: list[str] = field(default_factory=list)


def group_unit_interval(group: str, seed: int) -> float:
    """A uniform number in [0, 1) that depends only on the group id and the seed."""
    digest = hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_split(group: str, seed: int, fractions: tuple[float, float, float]) -> str:
    u = group_unit_interval(group, seed)
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "val"
    return "test"


def linked_units(manifest: DataManifest, group_column: str, link_column: str | None) -> dict[str, str]:
    """Group id -> the unit it is split with. Rows sharing a link (a near-duplicate component) tie
    their groups together, so neither a customer nor a component can straddle splits; the unit is
    named by its smallest group id so it is independent of row order. Reads two columns only."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    for path in manifest.paths():
        names = pq.read_schema(path).names
        if not link_column or link_column not in names:
            continue
        table = pq.read_table(path, columns=[group_column, link_column])
        linked = table.filter(pc.fill_null(pc.not_equal(pc.cast(table.column(link_column), pa.string()), ""), False))
        for group, link in zip(
            pc.cast(linked.column(group_column), pa.string()).to_pylist(), linked.column(link_column).to_pylist()
        ):
            if link:
                a, b = find(group), find("\0link:" + link)
                if a != b:
                    parent[max(a, b)] = min(a, b)  # any root will do: units are named below
    units: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for node in list(parent):
        if not node.startswith("\0link:"):
            members.setdefault(find(node), []).append(node)
    for nodes in members.values():
        name = min(nodes)
        for node in nodes:
            units[node] = name
    return units


def component_groups(table: pa.Table, id_column: str, link_column: str | None) -> list[str]:
    """Each row's unit without groups: its near-dup component ("dup:<component>") or its id ("id:<id>")."""
    ids = pc.cast(table.column(id_column), pa.string()).to_pylist()
    links = (
        table.column(link_column).to_pylist()
        if link_column and link_column in table.column_names
        else [None] * table.num_rows
    )
    return [f"dup:{link}" if link else f"id:{row_id}" for row_id, link in zip(ids, links)]


def _batch_groups(
    table: pa.Table, group_column: str | None, id_column: str | None, link_column: str | None
) -> pa.Array:
    if group_column:
        return pc.cast(table.column(group_column), pa.string()).combine_chunks()
    return pa.array(component_groups(table, str(id_column), link_column), pa.string())


def _split_shard(
    index: int,
    path: Path,
    out_dir: Path,
    group_column: str | None,
    seed: int,
    fractions: tuple[float, float, float],
    units: dict[str, str],
    link_column: str | None = None,
    id_column: str | None = None,
    batch_rows: int = 2048,
) -> dict[str, tuple[ShardInfo | None, set[str]]]:
    """One shard's rows written to out_dir/<split>/part-<index>, ``batch_rows`` at a time (memory:
    one batch, not one shard); the split of each distinct group is computed once, not per row."""
    source = pq.ParquetFile(path)
    writers: dict[str, pq.ParquetWriter] = {}
    rows = {name: 0 for name in SPLITS}
    groups: dict[str, set[str]] = {name: set() for name in SPLITS}
    cache: dict[str, int] = {}
    try:
        for batch in source.iter_batches(batch_size=batch_rows):
            table = pa.Table.from_batches([batch])
            if group_column is None:
                cache.clear()  # units named by row ids or components rarely repeat across batches
            encoded = _batch_groups(table, group_column, id_column, link_column).dictionary_encode()
            distinct = encoded.dictionary.to_pylist()
            for g in distinct:
                if g not in cache:
                    cache[g] = SPLITS.index(assign_split(units.get(g, g), seed, fractions))
            split_of = np.array([cache[g] for g in distinct], np.int8)
            assigned = (
                split_of[encoded.indices.to_numpy(zero_copy_only=False)] if len(distinct) else np.zeros(0, np.int8)
            )
            for number, name in enumerate(SPLITS):
                mask = assigned == number
                if not mask.any():
                    continue
                if name not in writers:
                    (out_dir / name).mkdir(parents=True, exist_ok=True)
                    writers[name] = pq.ParquetWriter(out_dir / name / f"part-{index:05d}.parquet", table.schema)
                writers[name].write_table(table.filter(pa.array(mask)))
                rows[name] += int(mask.sum())
                groups[name].update(g for g, k in zip(distinct, split_of) if k == number)
    finally:
        for writer in writers.values():
            writer.close()
    out: dict[str, tuple[ShardInfo | None, set[str]]] = {}
    for name in SPLITS:
        target = out_dir / name / f"part-{index:05d}.parquet"
        out[name] = (
            (ShardInfo(str(target), rows[name], target.stat().st_size, file_sha256(target)), groups[name])
            if name in writers
            else (None, set())
        )
    return out


SPLIT_THREADS = 2  # reading, writing and hashing shards release the GIL


def split_by_group(
    manifest: DataManifest,
    out_dir: Path,
    *,
    group_column: str | None,
    seed: int,
    fractions: tuple[float, float, float],
    link_column: str | None = None,
    id_column: str | None = None,
) -> SplitResult:
    """``group_column`` None: the data has no groups; rows are split by near-dup component (``link_column``),
    the rest one by one by ``id_column``. Shards are split on SPLIT_THREADS threads."""
    if group_column is None and id_column is None:
        raise ValueError("data without a group column is split by row id: pass id_column")
    units = linked_units(manifest, group_column, link_column) if group_column else {}
    writers_shards: dict[str, list[ShardInfo]] = {name: [] for name in SPLITS}
    groups_seen: dict[str, set[str]] = {name: set() for name in SPLITS}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=SPLIT_THREADS) as pool:
        done = pool.map(
            lambda job: _split_shard(
                job[0], job[1], out_dir, group_column, seed, fractions, units, link_column, id_column
            ),
            enumerate(manifest.paths()),
        )
        for written in done:
            for name in SPLITS:
                shard, groups = written[name]
                if shard is not None:
                    writers_shards[name].append(shard)
                    groups_seen[name].update(groups)
    manifests = {}
    for name in SPLITS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        manifests[name] = DataManifest(
            manifest.source,
            manifest.fingerprint,
            sum(s.rows for s in writers_shards[name]),
            writers_shards[name],
            manifest.columns,
        )
        manifests[name].save(out_dir / name / "manifest.json")
    leaked = sorted(
        (groups_seen["train"] & groups_seen["val"])
        | (groups_seen["train"] & groups_seen["test"])
        | (groups_seen["val"] & groups_seen["test"])
    )
    if leaked:
        # the count only: group values are customer ids, and this message reaches logs and the Prefect UI
        raise AssertionError(f"{len(leaked)} group(s) in more than one split under {out_dir}")
    for name in SPLITS:
        if manifests[name].rows == 0 and name != "val":
            raise ValueError(
                f"split {name!r} is empty: too few groups ({sum(len(g) for g in groups_seen.values())}) "
                f"for fractions {fractions}"
            )
    return SplitResult(
        manifests, {n: manifests[n].rows for n in SPLITS}, {n: len(groups_seen[n]) for n in SPLITS}, leaked
    )
