"""The planted person records: each row a pure function of (seed, position), every planted copy pointing at
an original, and the kinds of edits there to be measured."""

import pyarrow.parquet as pq
import pytest

from doughflow.data.synthetic.records import FIELDS, KINDS, RecordCorpus, RecordCorpusSpec, generate_records


def test_shards_hold_the_same_rows_however_the_corpus_is_cut(tmp_path):
    spec = RecordCorpusSpec(rows=900)
    one = generate_records(spec, tmp_path / "one", 900, workers=1)
    three = generate_records(spec, tmp_path / "three", 300, workers=1)
    rows = [r for p in one for r in pq.read_table(p).to_pylist()]
    assert rows == [r for p in three for r in pq.read_table(p).to_pylist()]
    by_id = {r["rec_id"]: r for r in rows}
    kinds = {r["dup_kind"] for r in rows}
    assert {"exact", "typo", "swap", "abbreviation", "missing", "mixed"} <= kinds
    for row in rows:
        if row["dup_of"]:
            original = by_id[row["dup_of"]]
            assert not original["dup_of"] and original["rec_id"] < row["rec_id"]
            if row["dup_kind"] == "exact":
                assert [row[f] for f in FIELDS] == [original[f] for f in FIELDS]
            if row["dup_kind"] == "swap":
                assert (row["given_name"], row["surname"]) == (original["surname"], original["given_name"])
        else:
            assert all(row[f] for f in FIELDS)  # originals and hard negatives have every field


def test_hard_negatives_share_an_address_or_a_name_but_are_not_copies():
    corpus = RecordCorpus(RecordCorpusSpec(rows=3000))
    households = [p for p in range(1, 3000) if corpus.kind(p) == "household"][:20]
    assert households and set(KINDS) >= {corpus.kind(p) for p in range(3000)} - {"original"}
    for p in households:
        row = corpus.row(p)
        assert row["dup_of"] == "" and row["street"] and row["given_name"]


def test_without_ids_the_truth_columns_are_left_out_and_csv_works(tmp_path):
    (path,) = generate_records(RecordCorpusSpec(rows=50), tmp_path, 100, with_ids=False, fmt="csv", workers=1)
    header = path.read_text().splitlines()[0]
    assert header == ",".join(f'"{f}"' for f in FIELDS)
    with pytest.raises(ValueError, match="sum below 1"):
        RecordCorpus(RecordCorpusSpec(rows=10, typo_rate=0.9, swap_rate=0.2))
