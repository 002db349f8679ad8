"""Leakage-safe splits: a customer's orders all land in one split.

The split of a group is a pure function of (seed, group id): hashing instead of shuffling keeps a
customer in the same split when new data arrives, and makes the split independent of row order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

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
        for group, link in zip(pc.cast(table.column(group_column), pa.string()).to_pylist(),
                               table.column(link_column).to_pylist()):
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


def split_by_group(manifest: DataManifest, out_dir: Path, *, group_column: str, seed: int,
                   fractions: tuple[float, float, float], link_column: str | None = None) -> SplitResult:
    units = linked_units(manifest, group_column, link_column)
    writers_shards: dict[str, list[ShardInfo]] = {name: [] for name in SPLITS}
    groups_seen: dict[str, set[str]] = {name: set() for name in SPLITS}
    for index, path in enumerate(manifest.paths()):
        table = pq.read_table(path)
        groups = pc.cast(table.column(group_column), pa.string()).to_pylist()
        assigned = [assign_split(units.get(group, group), seed, fractions) for group in groups]
        for name in SPLITS:
            mask = pa.array([a == name for a in assigned], pa.bool_())  # typed: a shard may be empty
            part = table.filter(mask)
            if part.num_rows == 0:
                continue
            groups_seen[name].update(g for g, a in zip(groups, assigned) if a == name)
            folder = out_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            out = folder / f"part-{index:05d}.parquet"
            pq.write_table(part, out)
            writers_shards[name].append(ShardInfo(str(out), part.num_rows, out.stat().st_size, file_sha256(out)))
    manifests = {}
    for name in SPLITS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        manifests[name] = DataManifest(manifest.source, manifest.fingerprint, sum(s.rows for s in writers_shards[name]),
                                       writers_shards[name], manifest.columns)
        manifests[name].save(out_dir / name / "manifest.json")
    leaked = sorted((groups_seen["train"] & groups_seen["val"]) | (groups_seen["train"] & groups_seen["test"])
                    | (groups_seen["val"] & groups_seen["test"]))
    if leaked:
        # the count only: group values are customer ids, and this message reaches logs and the Prefect UI
        raise AssertionError(f"{len(leaked)} group(s) in more than one split under {out_dir}")
    for name in SPLITS:
        if manifests[name].rows == 0 and name != "val":
            raise ValueError(f"split {name!r} is empty: too few groups ({sum(len(g) for g in groups_seen.values())}) "
                             f"for fractions {fractions}")
    return SplitResult(manifests, {n: manifests[n].rows for n in SPLITS}, {n: len(groups_seen[n]) for n in SPLITS}, leaked)
