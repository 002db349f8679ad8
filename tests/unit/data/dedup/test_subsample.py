"""The subsample stage on a real multi-process Dask cluster on the loopback interface."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doughflow.config import DaskConfig, SubsampleConfig
from doughflow.data.dask_client import dask_client
from doughflow.data.dedup.subsample import subsample
from doughflow.data.manifest import DataManifest, ShardInfo
from doughflow.data.synthetic.textgen import SCHEMA, TextCorpus, TextCorpusSpec


@pytest.fixture(scope="module")
def client():
    with dask_client(DaskConfig(n_workers=2, memory_limit="1GiB")) as c:
        assert len(c.scheduler_info()["workers"]) == 2
        assert all(w.startswith("tcp://127.0.0.1:") for w in c.scheduler_info()["workers"])
        yield c


def corpus(folder: Path, rows: list[dict], per_shard: int) -> DataManifest:
    folder.mkdir(parents=True)
    shards = []
    for i in range(0, len(rows), per_shard):
        path = folder / f"part-{i:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows[i : i + per_shard], schema=SCHEMA), path)
        shards.append(ShardInfo(str(path), len(rows[i : i + per_shard]), 0, ""))
    return DataManifest(str(folder), "f", len(rows), shards, SCHEMA.names)


CFG = SubsampleConfig.model_validate(
    {"near_dup": {"kind": "text", "threshold": 0.7}, "max_per_id": 3, "cluster": {"max_per_cluster": None}}
)
TEXT_ONLY = SubsampleConfig.model_validate(
    {"near_dup": {"kind": "text"}, "max_per_id": None, "cluster": {"max_per_cluster": None}}
)


def test_text_dedup_on_a_process_cluster_is_independent_of_partitioning(tmp_path, client):
    generator = TextCorpus(TextCorpusSpec(rows=600, customers=60, near_rate=0.15, exact_rate=0.05))
    rows = [generator.row(p) for p in range(600)]
    results = []
    for per_shard, order in ((100, rows), (250, rows[::-1])):
        manifest = corpus(tmp_path / f"in-{per_shard}", order, per_shard)
        result = subsample(
            manifest, tmp_path / f"out-{per_shard}", CFG, client, id_column="doc_id", group_column="customer_id"
        )
        removed = pq.read_table(result.removed_path).to_pandas()
        results.append(sorted(zip(removed["id"], removed["reason"], removed["kept_id"])))
        assert result.rows_out + len(removed) == 600  # nothing disappears without a record
        assert result.truth["recall"] >= 0.9 and result.truth["precision"] >= 0.99
        kept = pa.concat_tables([pq.read_table(p) for p in result.manifest.paths()]).to_pandas()
        assert kept["customer_id"].value_counts().max() <= 3
        assert (kept["_dup_group"] != "").any() and result.examples["near_pairs"]
        results.append((sorted(zip(kept["doc_id"], kept["_dup_group"])), result.examples["near_pairs"]))
    assert results[0] == results[2] and results[1] == results[3]  # removals, then groups and example pairs


def test_bad_text_rows_are_quarantined_with_file_and_row(tmp_path, client):
    rows = [
        {"doc_id": f"d{i}", "customer_id": "c", "text": t, "dup_of": "", "dup_kind": "", "true_jaccard": None}
        for i, t in enumerate(["a fine pizza", "", None, "  ...  ", "another one"])
    ]
    manifest = corpus(tmp_path / "in", rows, 10)
    result = subsample(manifest, tmp_path / "out", TEXT_ONLY, client, id_column="doc_id", group_column="customer_id")
    removed = pq.read_table(result.removed_path).to_pandas().set_index("id")
    assert result.rows_out == 2
    assert set(removed.index) == {"d1", "d2", "d3"}
    assert all("text: empty text" in d and "part-00000.parquet row" in d for d in removed["detail"])


def test_missing_column_names_file_and_column(tmp_path, client):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"doc_id": ["a"], "body": ["x"]}), path)
    manifest = DataManifest("x", "f", 1, [ShardInfo(str(path), 1, 0, "")], ["doc_id", "body"])
    with pytest.raises(ValueError, match=r"bad\.parquet: missing column\(s\) \['text'\]"):
        subsample(manifest, tmp_path / "out", TEXT_ONLY, client, id_column="doc_id", group_column="customer_id")


def test_pizza_image_near_dups_on_an_in_process_cluster(tiny_source, tmp_path):
    """The default pizza settings (image near-dup, customer and cluster caps) on the tiny set, on the
    in-process cluster that small stages get: planted copies of every kind are found."""
    from doughflow.config import load_config
    from doughflow.data.dask_client import in_process
    from doughflow.data.sources.fetch import fetch_source
    from doughflow.data.validate import validate_shards
    from tests.support.configs import PIZZA_COLUMNS as COLUMNS

    config = load_config(None, ["data.subsample.max_per_id=20", "data.subsample.cluster.max_per_cluster=60"])
    raw = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=100)
    valid = validate_shards(raw, tmp_path / "valid", **COLUMNS).manifest
    assert in_process(config.dask, valid.rows)
    with dask_client(config.dask, rows=valid.rows) as small:
        assert all(w.startswith("inproc://") for w in small.scheduler_info()["workers"])
        result = subsample(
            valid, tmp_path / "out", config.data.subsample, small, id_column="sample_id", group_column="customer_id"
        )
    truth = result.truth
    near = {k: v for k, v in truth["per_kind"].items() if k in ("reencoded", "shifted", "recoloured")}
    assert near and sum(v["planted"] for v in near.values()) > 0
    assert all(v["found"] == v["planted"] for v in near.values()), truth
    assert truth["precision"] >= 0.98 and truth["per_kind"]["exact"]["recall"] == 1.0
    removed = pq.read_table(result.removed_path).to_pandas()
    assert result.rows_out + len(removed) == result.rows_in
    assert {"near_duplicate", "id_cap"} <= set(removed["reason"])
