"""Text rows through validate: joined fields, undecodable bytes and numbers or dates among the text columns."""

import datetime

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.adapters import TextRecords
from doughflow.data.manifest import DataManifest, ShardInfo
from doughflow.data.textvalidate import join_fields, text_problems
from doughflow.data.validate import validate_shards

fields = st.lists(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8) | st.none(),
    min_size=3,
    max_size=3,
)


@settings(max_examples=80, deadline=None)
@given(st.lists(fields, min_size=1, max_size=10))
def test_joined_fields_skip_empty_ones(rows):
    columns = [pa.array([row[k] for row in rows], pa.string()) for k in range(3)]
    assert join_fields(columns).to_pylist() == [" ".join(v for v in row if v) for row in rows]


def test_undecodable_bytes_quarantine_the_row_and_numbers_read_as_written(tmp_path):
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "title": pa.array([b"caf\xc3\xa9", b"bad \xff byte", b"ok"], pa.binary()),
            "year": [1999, 2004, None],
            "born": [datetime.date(1970, 1, 2), None, datetime.date(2001, 5, 6)],
        }
    )
    adapter = TextRecords([], ["title", "year", "born"])
    fixed, problems = text_problems(table, adapter)
    assert problems[0] is None and problems[2] is None
    assert problems[1] == ("text: not UTF-8", "title: not UTF-8 (invalid byte at offset 4)")
    assert fixed.column("_text").to_pylist() == ["café 1999 1970-01-02", "2004", "ok 2001-05-06"]
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    manifest = DataManifest("x", "f", 3, [ShardInfo(str(path), 3, 0, "")], table.column_names)
    result = validate_shards(
        manifest,
        tmp_path / "valid",
        id_column="id",
        image_column="image",
        group_column=None,
        target_columns=[],
        max_count=0,
        adapter=adapter,
    )
    assert result.rows_valid == 2 and result.reasons == {"text: not UTF-8": 1}
    quarantined = pq.read_table(result.quarantine_path).to_pylist()
    assert quarantined[0]["title"] == b"bad \xff byte" and quarantined[0]["_source_row"] == 1  # kept as it came
    assert pq.read_table(result.manifest.shards[0].path).schema.field("title").type == pa.string()
