"""Hostile source folders: links out of the folder, FIFOs, and malformed CSV rows are named, never read."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doughflow.data.sources.fetch import fetch_source


def test_links_leading_out_and_special_files_are_refused_naming_them(tmp_path):
    secret = tmp_path / "outside" / "secret.key"
    secret.parent.mkdir()
    secret.write_text("not data")
    source = tmp_path / "source"
    (source / "pizzas").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), source / "pizzas" / "part-0.parquet")
    os.symlink(secret, source / "pizzas" / "part-1.parquet")
    os.mkfifo(source / "pizzas" / "part-2.parquet")
    with pytest.raises(ValueError) as caught:
        fetch_source(str(source), tmp_path / "out")
    message = str(caught.value)
    assert "refused 2 entries" in message
    assert f"pizzas/part-1.parquet is a symbolic link to {secret}, outside the source folder" in message
    assert "pizzas/part-2.parquet is not a regular file" in message
    assert not list((tmp_path / "out").rglob("*.parquet"))  # nothing fetched, secret never copied


def test_a_link_within_the_folder_is_read_like_its_file(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), source / "part-0.parquet")
    os.symlink("part-0.parquet", source / "again.parquet")
    assert fetch_source(str(source), tmp_path / "out").rows == 4


def test_a_malformed_csv_row_is_named_without_its_content(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("sample_id,customer_id,count\na,cust-secret-1,1\nb,cust-secret-2\n")
    with pytest.raises(ValueError) as caught:
        fetch_source(str(source), tmp_path / "out")
    message = str(caught.value)
    assert (
        "rows.csv" in message and "row 3: CSV parse error: Expected 3 columns, got 2 (row content not shown)" in message
    )
    assert "secret" not in message and caught.value.__cause__ is None and caught.value.__suppress_context__
