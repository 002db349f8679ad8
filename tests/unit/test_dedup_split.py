import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup import exact_dedup, keep_lowest_id
from doughflow.data.fetch import fetch_source
from doughflow.data.split import assign_split, split_by_group
from doughflow.data.validate import validate_shards
from tests.unit.test_validate import COLUMNS, TARGETS


def _clean(tiny_source, tmp_path):
    raw = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=100)
    return validate_shards(raw, tmp_path / "valid", **COLUMNS).manifest


def test_exact_and_reencoded_copies_removed_keeping_lowest_id(tiny_source, tmp_path):
    valid = _clean(tiny_source, tmp_path)
    result = exact_dedup(valid, tmp_path / "dedup", id_column="sample_id", target_columns=TARGETS)
    truth = pq.read_table(tiny_source).to_pylist()
    planted = {r["sample_id"]: r for r in truth if r["dup_kind"] in ("exact", "reencoded") and not r["defect"]}
    removed = pq.read_table(result.removed_path).to_pylist()
    assert result.rows_in == result.rows_out + result.rows_removed
    assert len(removed) == result.rows_removed >= len(planted) > 0
    for row in removed:
        assert row["reason"] == "exact_duplicate" and row["kept_id"] < row["id"]
    removed_or_kept = {r["id"] for r in removed} | {r["kept_id"] for r in removed}
    assert all(sample_id in removed_or_kept for sample_id in planted)
    again = exact_dedup(result.manifest, tmp_path / "dedup2", id_column="sample_id", target_columns=TARGETS)
    assert again.rows_removed == 0  # idempotent


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 5)), min_size=1, max_size=60, unique_by=lambda t: t[0]),
       st.randoms())
def test_keep_lowest_id_ignores_row_order(rows, random):
    ids = [f"id{i:03d}" for i, _ in rows]
    hashes = [bytes([h]) * 16 for _, h in rows]
    expected = {}
    for sample_id, digest in zip(ids, hashes):
        expected[digest] = min(expected.get(digest, sample_id), sample_id)
    order = list(range(len(ids)))
    random.shuffle(order)
    mapping = keep_lowest_id(pa.array([ids[i] for i in order]), pa.array([hashes[i] for i in order], pa.binary(16)))
    got = dict(zip(mapping.column("id").to_pylist(), mapping.column("kept_id").to_pylist()))
    assert got == {sample_id: expected[digest] for sample_id, digest in zip(ids, hashes)}


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
