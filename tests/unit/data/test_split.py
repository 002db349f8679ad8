"""Splits never leak a customer or a near-duplicate component."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doughflow.data.manifest import DataManifest, ShardInfo
from doughflow.data.sources.fetch import fetch_source
from doughflow.data.split import assign_split, split_by_group
from doughflow.data.validate import validate_shards
from tests.support.configs import PIZZA_COLUMNS as COLUMNS

row = st.tuples(st.integers(0, 12), st.sampled_from(["", "", "k1", "k2", "k3"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(row, min_size=12, max_size=80), st.integers(0, 100))
def test_no_customer_or_component_straddles_splits(tmp_path: Path, rows, seed):
    import tempfile

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    table = pa.table(
        {
            "sample_id": [f"s{i}" for i in range(len(rows))],
            "customer_id": [f"c{c}" for c, _ in rows],
            "_dup_group": [k for _, k in rows],
        }
    )
    pq.write_table(table, folder / "in.parquet")
    manifest = DataManifest(
        "x", "f", len(rows), [ShardInfo(str(folder / "in.parquet"), len(rows), 0, "")], table.column_names
    )
    try:
        result = split_by_group(
            manifest,
            folder / "out",
            group_column="customer_id",
            seed=seed,
            fractions=(0.5, 0.25, 0.25),
            link_column="_dup_group",
        )
    except ValueError:  # too few units for a non-empty test split: allowed, and said clearly
        return
    where: dict[str, set] = {}
    for name, m in result.manifests.items():
        for path in m.paths():
            t = pq.read_table(path).to_pydict()
            for c, k in zip(t["customer_id"], t["_dup_group"]):
                where.setdefault(c, set()).add(name)
                if k:
                    where.setdefault("link:" + k, set()).add(name)
    assert all(len(s) == 1 for s in where.values()), where


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=12), st.integers(0, 1000))
def test_a_group_always_gets_the_same_split(group, seed):
    fractions = (0.7, 0.15, 0.15)
    assert assign_split(group, seed, fractions) == assign_split(group, seed, fractions) in ("train", "val", "test")


def test_split_never_puts_a_customer_in_two_splits(tiny_source, tmp_path):
    valid = _clean(tiny_source, tmp_path)
    result = split_by_group(valid, tmp_path / "split", group_column="customer_id", seed=3, fractions=(0.6, 0.2, 0.2))
    owners = {}
    for name, manifest in result.manifests.items():
        for path in manifest.paths():
            for customer in pq.read_table(path).column("customer_id").to_pylist():
                owners.setdefault(customer, set()).add(name)
    assert all(len(splits) == 1 for splits in owners.values())
    assert sum(result.rows.values()) == valid.rows
    assert result.rows["train"] > 0 and result.rows["test"] > 0 and result.groups["train"] > result.groups["test"]
    rerun = split_by_group(valid, tmp_path / "split2", group_column="customer_id", seed=3, fractions=(0.6, 0.2, 0.2))
    assert rerun.rows == result.rows


def _clean(tiny_source, tmp_path):
    raw = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=100)
    return validate_shards(raw, tmp_path / "valid", **COLUMNS).manifest


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["", "", "", "k1", "k2", "k3"]), min_size=12, max_size=80), st.integers(0, 100))
def test_without_groups_rows_split_by_component(tmp_path: Path, links, seed):
    """No group column: a near-dup component's rows land in one split, every other row alone by its id."""
    import tempfile

    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    table = pa.table({"sample_id": [f"s{i}" for i in range(len(links))], "_dup_group": links})
    pq.write_table(table, folder / "in.parquet")
    manifest = DataManifest(
        "x", "f", len(links), [ShardInfo(str(folder / "in.parquet"), len(links), 0, "")], table.column_names
    )
    try:
        result = split_by_group(
            manifest,
            folder / "out",
            group_column=None,
            seed=seed,
            fractions=(0.5, 0.25, 0.25),
            link_column="_dup_group",
            id_column="sample_id",
        )
    except ValueError:
        return
    where: dict[str, set] = {}
    for name, m in result.manifests.items():
        for path in m.paths():
            for sample, link in zip(*pq.read_table(path).to_pydict().values()):
                where.setdefault(link or sample, set()).add(name)
    assert all(len(s) == 1 for s in where.values()), where
    assert sum(result.rows.values()) == len(links)
    units = {link or f"s{i}" for i, link in enumerate(links)}
    assert sum(result.groups.values()) == len(units)
