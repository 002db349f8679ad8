"""Property tests of the per-partition decisions: they must not depend on partitioning or order."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup import reduce as R
from doughflow.data.dedup.sketch import id_keys, rank_keys
from tests.support.dedup_reference import component_removals

rows = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), min_size=1, max_size=60, unique_by=lambda r: r[0])


def frame_of(items) -> pd.DataFrame:
    ids = [f"r{i:03d}" for i, _ in items]
    return pd.DataFrame(
        {
            "key": id_keys(ids),
            "id": ids,
            "h1": [c for _, c in items],
            "h2": 0,
            "rank": rank_keys(ids, 7),
            "group": [f"g{c % 3}" for _, c in items],
        }
    )


def partitioned(frame: pd.DataFrame, parts: int, column: str, seed: int) -> list[pd.DataFrame]:
    """What a shuffle on ``column`` hands to partitions: every row of one value together, any order."""
    shuffled = frame.sample(frac=1.0, random_state=seed)
    bucket = shuffled[column].map(hash) % parts
    return [shuffled[bucket == p] for p in range(parts)]


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 5), st.integers(0, 1000))
def test_exact_dedup_independent_of_partitioning_and_order_and_idempotent(items, parts, seed):
    frame = frame_of(items)
    whole = R.exact_duplicates(frame)
    split = pd.concat([R.exact_duplicates(p) for p in partitioned(frame, parts, "h1", seed)])
    assert sorted(zip(whole["id"], whole["kept_id"])) == sorted(zip(split["id"], split["kept_id"]))
    survivors = R.alive(frame, np.sort(whole["key"].to_numpy()))
    assert R.exact_duplicates(survivors).empty
    assert survivors["h1"].is_unique  # one row per content, the lowest id
    for h, group in frame.groupby("h1"):
        assert survivors[survivors["h1"] == h]["id"].iloc[0] == group["id"].min()


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(1, 6), st.integers(1, 5), st.integers(0, 1000))
def test_caps_exact_for_any_partitioning(items, limit, parts, seed):
    frame = frame_of(items)
    shuffled = frame.sample(frac=1.0, random_state=seed)
    chunks = [shuffled.iloc[i::parts] for i in range(parts)]
    flagged = pd.concat([R.precap(c, np.zeros(0, np.int64), "group", limit) for c in chunks])
    rest = flagged[~flagged["over"]]
    excess = pd.concat([R.cap_excess(p, "group", limit, "cap") for p in partitioned(rest, parts, "group", seed)])
    removed = set(flagged[flagged["over"]]["id"]) | set(excess["id"])
    kept = frame[~frame["id"].isin(removed)]
    for group, members in frame.groupby("group"):
        chosen = kept[kept["group"] == group]
        assert len(chosen) == min(limit, len(members))
        expected = members.sort_values(["rank", "id"]).head(limit)["id"]
        assert set(chosen["id"]) == set(expected)  # the seeded-rank choice, not a partition's


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=30), st.integers(1, 3))
def test_components_keep_lowest_ids_and_never_drop_a_row_without_a_near_duplicate(edges, keep):
    pairs = pd.DataFrame(
        {"id_a": [f"d{a:02d}" for a, _ in edges], "id_b": [f"d{b:02d}" for _, b in edges], "score": 1.0}
    )
    pairs = pairs[pairs["id_a"] != pairs["id_b"]]
    removed, groups = component_removals(pairs, keep)
    linked = set(pairs["id_a"]) | set(pairs["id_b"])
    assert set(removed["id"]) <= linked  # a row with no near-duplicate is never dropped
    for _, members in groups.groupby("group"):
        survivors = sorted(set(members["id"]) - set(removed["id"]))
        assert survivors == sorted(members["id"])[:keep]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 8), st.integers(-50, 50)), max_size=80, unique=True),
    st.integers(1, 4),
    st.integers(0, 1000),
)
def test_text_band_shuffle_gives_the_star_edges_whatever_the_split(pairs, parts, seed):
    """The file-based band shuffle (map: split by bucket; reduce: numpy stars) yields exactly the
    edges of lsh.star_edges over all pairs, for any number of parts and any row order."""
    from doughflow.data.dedup.lsh import star_edges

    frame = pd.DataFrame(pairs, columns=["bucket", "key"]).astype("int64").sample(frac=1.0, random_state=seed)
    expected = star_edges(frame)
    part = frame["bucket"].to_numpy().view(np.uint64) % np.uint64(parts)
    got = pd.concat(
        [
            R.sorted_star_edges(frame["bucket"].to_numpy()[part == p], frame["key"].to_numpy()[part == p])
            for p in range(parts)
        ],
        ignore_index=True,
    )
    # The same edge can come from two buckets that land in different parts; components only need
    # the edge set, so duplicates across parts are harmless.
    assert set(zip(got["a"], got["b"])) == set(zip(expected["a"], expected["b"]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=30),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(0, 1000),
)
def test_component_shuffle_on_workers_matches_the_in_process_choice(edges, keep, shards, seed):
    """member_map / member_part (keys and labels in, ids only on the workers) remove exactly the rows
    component_removals removes and give every member the same group, for any number of shards."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from doughflow.data.dedup.lsh import components

    pairs = pd.DataFrame(
        {"id_a": [f"d{a:02d}" for a, _ in edges], "id_b": [f"d{b:02d}" for _, b in edges], "score": 1.0}
    )
    pairs = pairs[pairs["id_a"] != pairs["id_b"]]
    expected_removed, expected_groups = component_removals(pairs, keep)
    ids = [f"d{i:02d}" for i in range(21)]
    rng = np.random.default_rng(seed)
    shard_of = rng.integers(0, shards, len(ids))
    with tempfile.TemporaryDirectory() as tmp:
        sketches = []
        for s in range(shards):
            mine = [i for i, at in zip(ids, shard_of) if at == s]
            sketches.append(f"{tmp}/sketch-{s}.parquet")
            pq.write_table(pa.table({"key": id_keys(mine), "id": pa.array(mine, pa.string())}), sketches[-1])
        a, b = id_keys(list(pairs["id_a"])), id_keys(list(pairs["id_b"]))
        nodes, labels = components(a, b)
        np.savez(f"{tmp}/graph.npz", nodes=nodes, labels=labels)
        maps = [f"{tmp}/members-{s}.arrow" for s in range(shards)]
        for s in range(shards):
            R.member_map(sketches[s], maps[s], f"{tmp}/graph.npz", s, shards)
        gone = [
            R.member_part(maps, p, keep, f"{tmp}/near-{p}.parquet", f"{tmp}/groups-{p}.arrow", shards)
            for p in range(shards)
        ]
        removed = pd.concat([pq.read_table(f"{tmp}/near-{p}.parquet").to_pandas() for p in range(shards)])
        assert sorted(np.concatenate(gone).tolist()) == sorted(removed["key"])
        groups = {}
        for s in range(shards):
            keys, group = R.shard_groups([f"{tmp}/groups-{p}.arrow" for p in range(shards)], s)
            groups.update(zip(keys.tolist(), group.to_pylist()))
            assert set(keys.tolist()) <= set(id_keys([i for i, at in zip(ids, shard_of) if at == s]).tolist())
    assert sorted(zip(removed["id"], removed["kept_id"])) == sorted(
        zip(expected_removed["id"].astype(str), expected_removed["kept_id"].astype(str))
    )
    assert sorted(removed["key"]) == sorted(id_keys(list(expected_removed["id"].astype(str))).tolist())
    assert groups == dict(
        zip(id_keys(list(expected_groups["id"].astype(str))).tolist(), expected_groups["group"].astype(str))
    )
