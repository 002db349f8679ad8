"""Partition-level operations of the subsample stage, as plain pandas functions.

Each runs on one Dask partition (before or after a shuffle) and is a pure function of its rows, so
it can be tested directly and its result never depends on partitioning: every choice is by content
hash, seeded rank or id, never by position.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from doughflow.data.dedup.lsh import hamming
from doughflow.data.dedup.sketch import rows_matrix

REMOVED_COLUMNS = ["key", "id", "reason", "kept_id", "detail"]


def removed_arrow(removed: pd.DataFrame) -> pa.Table:
    """A removed-rows frame as an Arrow table with the one schema every removed file has."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("key", pa.int64()),
            ("id", pa.string()),
            ("reason", pa.string()),
            ("kept_id", pa.string()),
            ("detail", pa.string()),
        ]
    )
    frame = removed[REMOVED_COLUMNS].astype({"key": "int64"})
    frame = frame.astype({c: str for c in REMOVED_COLUMNS[1:] if frame[c].dtype == object})  # Arrow-backed stay Arrow
    return pa.Table.from_pandas(frame, preserve_index=False).cast(schema)


def empty_removed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "key": pd.Series(dtype="int64"),
            "id": pd.Series(dtype="object"),
            "reason": pd.Series(dtype="object"),
            "kept_id": pd.Series(dtype="object"),
            "detail": pd.Series(dtype="object"),
        }
    )


def in_sorted(values: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted right side: one binary search per value, no sort of both sides."""
    if len(sorted_keys) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[at] == values


def alive(frame: pd.DataFrame, removed_keys: np.ndarray) -> pd.DataFrame:
    """Rows not removed by an earlier step (removed_keys sorted)."""
    if len(removed_keys) == 0:
        return frame
    return frame[~in_sorted(frame["key"].to_numpy(), removed_keys)]


def exact_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose content hash equals a row with a lower id; all rows of one hash must be here."""
    ordered = frame.sort_values(["h1", "h2", "id"], kind="mergesort").reset_index(drop=True)
    first = ordered.groupby(["h1", "h2"], sort=False)["id"].transform("first")
    is_dup = (ordered["id"] != first).to_numpy()
    dup = ordered[is_dup]
    out = pd.DataFrame(
        {
            "key": dup["key"].to_numpy(),
            "id": dup["id"].to_numpy(),
            "reason": "exact_duplicate",
            "kept_id": first.to_numpy()[is_dup],
            "detail": "",
        }
    )
    return out if len(out) else empty_removed()


def endpoint_rows(frame: pd.DataFrame, edges: pd.DataFrame, payload: str = "sig") -> pd.DataFrame:
    """The sketch rows of edge ends in this partition, tagged with the edge number and side; the
    ``payload`` column (signature or thumbnail) travels as ``sig``."""
    parts = []
    for side in ("a", "b"):
        match = edges[["edge", side]].merge(frame[["key", "id", payload]], left_on=side, right_on="key")
        parts.append(
            pd.DataFrame(
                {
                    "edge": match["edge"].to_numpy(),
                    "side": side,
                    "id": match["id"].to_numpy(),
                    "sig": match[payload].to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def similarity(sig_a: np.ndarray, sig_b: np.ndarray, kind: str) -> np.ndarray:
    """Text: share of equal MinHash values (estimated Jaccard). Images: Hamming distance."""
    if kind == "text":
        return (sig_a == sig_b).mean(axis=1)
    return hamming(sig_a, sig_b).astype(np.float64)


def verify_edges(frame: pd.DataFrame, kind: str, width: int) -> pd.DataFrame:
    """Join the two ends of each edge (both are in this partition after the shuffle on edge) and
    score it by the estimated Jaccard of their MinHash signatures (images are verified on
    thumbnails by doughflow.data.dedup.imageverify)."""
    a = frame[frame["side"] == "a"].set_index("edge")
    b = frame[frame["side"] == "b"].set_index("edge")
    both = a.join(b, lsuffix="_a", rsuffix="_b", how="inner")
    if both.empty:
        return pd.DataFrame(
            {
                "edge": pd.Series(dtype="int64"),
                "id_a": pd.Series(dtype="object"),
                "id_b": pd.Series(dtype="object"),
                "score": pd.Series(dtype="float64"),
            }
        )
    score = similarity(
        rows_matrix(both["sig_a"].to_numpy(), np.uint32, width),
        rows_matrix(both["sig_b"].to_numpy(), np.uint32, width),
        kind,
    )
    return pd.DataFrame(
        {
            "edge": both.index.to_numpy(),
            "id_a": both["id_a"].to_numpy(),
            "id_b": both["id_b"].to_numpy(),
            "score": score,
        }
    )


def cap_excess(frame: pd.DataFrame, column: str, limit: int, reason: str) -> pd.DataFrame:
    """Rows beyond the ``limit`` lowest (rank, id) of each ``column`` value. Applied once per
    partition (a pre-cap that never drops a row the global cap would keep) and once after the
    shuffle on ``column``, it keeps exactly min(limit, count) rows per value."""
    if frame.empty:
        return empty_removed()
    ordered = frame.sort_values([column, "rank", "id"], kind="mergesort")
    position = ordered.groupby(column, sort=False).cumcount()
    excess = ordered[position.to_numpy() >= limit]
    return (
        pd.DataFrame(
            {
                "key": excess["key"].to_numpy(),
                "id": excess["id"].to_numpy(),
                "reason": reason,
                "kept_id": "",
                "detail": excess[column].astype(str).to_numpy(),
            }
        )
        if len(excess)
        else empty_removed()
    )


def precap(frame: pd.DataFrame, removed_keys: np.ndarray, column: str, limit: int) -> pd.DataFrame:
    """Live rows with a flag: True when the partition alone already proves the row is over the cap."""
    frame = alive(frame, removed_keys)
    excess = cap_excess(frame, column, limit, "")
    out = frame[["key", "id", "rank", column]].copy()
    out["over"] = np.isin(out["key"].to_numpy(), excess["key"].to_numpy())
    return out


def assign_clusters(frame: pd.DataFrame, removed_keys: np.ndarray, centres: np.ndarray) -> pd.DataFrame:
    """Nearest k-means centre of each live row's features."""
    frame = alive(frame, removed_keys)
    feats = rows_matrix(frame["feat"].to_numpy(), np.float32, centres.shape[1])
    if len(feats):
        distance = (feats**2).sum(1)[:, None] - 2 * feats @ centres.T + (centres**2).sum(1)[None, :]
        label = distance.argmin(axis=1).astype(np.int64)
    else:
        label = np.zeros(0, np.int64)
    return pd.DataFrame(
        {
            "key": frame["key"].to_numpy(),
            "id": frame["id"].to_numpy(),
            "rank": frame["rank"].to_numpy(),
            "cluster": label,
        }
    )


def sorted_star_edges(bucket: np.ndarray, key: np.ndarray) -> pd.DataFrame:
    """``lsh.star_edges`` in numpy: one sort by bucket, the minimum key per bucket by reduceat
    (5x faster than the pandas groupby on 2M pairs)."""
    order = np.argsort(bucket, kind="stable")
    bucket, key = bucket[order], key[order]
    if len(bucket) == 0:
        return pd.DataFrame({"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64)})
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    sizes = np.diff(np.r_[starts, len(bucket)])
    centre = np.repeat(np.minimum.reduceat(key, starts), sizes)
    keep = centre != key
    edges = pd.DataFrame({"a": centre[keep], "b": key[keep]})
    return edges.drop_duplicates().reset_index(drop=True)


def exact_part(map_paths: list[str], part: int, out_path: str) -> np.ndarray:
    """Reduce side of the exact-dedup file shuffle: this part's duplicates, written to ``out_path``
    (Parquet, REMOVED_COLUMNS); returns their keys. Rows of one content hash all land here."""
    import pyarrow.parquet as pq

    from doughflow.data.dedup.fileshuffle import read_part

    table = read_part(map_paths, part)
    frame = table.to_pandas() if table is not None else pd.DataFrame({"key": [], "id": [], "h1": [], "h2": []})
    removed = exact_duplicates(frame) if len(frame) else empty_removed()
    pq.write_table(removed_arrow(removed), out_path)
    return removed["key"].to_numpy(dtype=np.int64)


def shared_buckets(table: pa.Table | None, removed_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled part's (bucket, key) rows, sorted by bucket, in buckets of two or more rows, without
    the rows an earlier step removed (``removed_keys`` sorted). Most buckets hold one row and give no
    edge: sort once, keep the shared buckets, and only then drop removed rows (a search per surviving
    row, not per band row). A bucket left with one live row gives no edge either way."""
    if table is None or table.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    bucket = table.column("bucket").to_numpy()
    key = table.column("key").to_numpy()
    order = np.argsort(bucket)
    bucket, key = bucket[order], key[order]
    same = bucket[1:] == bucket[:-1]
    multi = np.r_[same, False] | np.r_[False, same]
    bucket, key = bucket[multi], key[multi]
    if len(removed_keys):
        live = ~in_sorted(key, removed_keys)
        bucket, key = bucket[live], key[live]
    return bucket, key


def band_part(map_paths: list[str], part: int, removed_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduce side of the LSH band file shuffle: star edges (a, b) of this part's buckets, over rows
    no earlier step removed (``removed_keys`` sorted)."""
    from doughflow.data.dedup.fileshuffle import read_part

    bucket, key = shared_buckets(read_part(map_paths, part), removed_keys)
    edges = sorted_star_edges(bucket, key)
    return edges["a"].to_numpy(), edges["b"].to_numpy()


def component_choice(members: pa.Table, keep: int) -> tuple[pa.Table, pa.Table]:
    """Keep the ``keep`` lowest ids of each component. ``members``: (component, key, id, ...) with
    every row of a component present (a key may repeat: one id in two shards counts once).
    Returns (removed rows with the REMOVED_COLUMNS schema, ``members`` sorted with a ``group``
    column: the lowest id of its component)."""
    import pyarrow.compute as pc

    if members.num_rows == 0:
        return removed_arrow(empty_removed()), members.append_column("group", pa.array([], pa.string()))
    members = members.take(
        pc.sort_indices(members, sort_keys=[("component", "ascending"), ("id", "ascending"), ("key", "ascending")])
    )
    component = members.column("component").to_numpy()
    key = members.column("key").to_numpy()
    starts = np.flatnonzero(np.r_[True, component[1:] != component[:-1]])
    sizes = np.diff(np.r_[starts, len(component)])
    distinct = np.r_[True, (component[1:] != component[:-1]) | (key[1:] != key[:-1])]
    rank = np.cumsum(distinct) - 1
    position = rank - np.repeat(rank[starts], sizes)
    ids = members.column("id").combine_chunks().cast(pa.string())
    group = ids.take(pa.array(np.repeat(starts, sizes)))
    gone = pa.array(distinct & (position >= keep))
    gone_ids = ids.filter(gone)
    n = len(gone_ids)
    removed = pa.table(
        {
            "key": pa.array(key).filter(gone),
            "id": gone_ids,
            "reason": pa.array(["near_duplicate"] * n, pa.string()),
            "kept_id": group.filter(gone),
            "detail": pa.array([""] * n, pa.string()),
        }
    )
    return removed, members.append_column("group", group)


def member_map(sketch_path: str, out_path: str, graph_path: str, shard: int, parts: int) -> int:
    """Map side of the component shuffle: this shard's rows that are in a near-dup component, as
    (component, key, id, shard), split by component. ``graph_path``: npz of sorted node keys and
    their component labels (16 bytes a node: the driver never holds ids per duplicate)."""
    import pyarrow.parquet as pq

    from doughflow.data.dedup.fileshuffle import load_npz, write_parts

    graph = load_npz(graph_path)
    nodes, labels = graph["nodes"], graph["labels"]
    table = pq.read_table(sketch_path, columns=["key", "id"])
    key = table.column("key").to_numpy()
    hit = np.flatnonzero(in_sorted(key, nodes))
    component = labels[np.searchsorted(nodes, key[hit])]
    members = pa.table(
        {
            "component": component,
            "key": key[hit],
            "id": table.column("id").combine_chunks().cast(pa.string()).take(pa.array(hit)),
            "shard": np.full(len(hit), shard, np.int32),
        }
    )
    write_parts(members, component % parts, parts, out_path)
    return len(hit)


def member_part(
    map_paths: list[str], part: int, keep: int, removed_path: str, group_path: str, shards: int
) -> np.ndarray:
    """Reduce side of the component shuffle: whole components meet here, the lowest ids are kept.
    Writes the removed rows (Parquet) and each member's group id split by source shard (for
    filter_shard); returns the removed keys."""
    import pyarrow.parquet as pq

    from doughflow.data.dedup.fileshuffle import read_part, write_parts

    table = read_part(map_paths, part)
    if table is None:
        table = pa.table(
            {
                "component": pa.array([], pa.int64()),
                "key": pa.array([], pa.int64()),
                "id": pa.array([], pa.string()),
                "shard": pa.array([], pa.int32()),
            }
        )
    removed, members = component_choice(table, keep)
    pq.write_table(removed, removed_path)
    write_parts(
        members.select(["key", "group"]), members.column("shard").to_numpy().astype(np.int64), shards, group_path
    )
    return removed.column("key").to_numpy()


def shard_groups(group_paths: list[str], shard: int) -> tuple[np.ndarray, pa.Array]:
    """(sorted keys, group id per key) of this shard's rows in near-dup components."""
    from doughflow.data.dedup.fileshuffle import read_part

    table = read_part(group_paths, shard) if group_paths else None
    if table is None or table.num_rows == 0:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    keys = table.column("key").to_numpy()
    order = np.argsort(keys, kind="stable")
    return keys[order], table.column("group").combine_chunks().take(pa.array(order))
