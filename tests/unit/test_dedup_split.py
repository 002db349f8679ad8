import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.sources.fetch import fetch_source
from doughflow.data.split import assign_split, split_by_group
from doughflow.data.validate import validate_shards
from tests.unit.test_validate import COLUMNS


def _clean(tiny_source, tmp_path):
    raw = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=100)
    return validate_shards(raw, tmp_path / "valid", **COLUMNS).manifest


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
