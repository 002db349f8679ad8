"""The file shuffle hands every row to exactly its part, whatever the number of map files and parts."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup.fileshuffle import part_of, read_part, write_parts


@settings(max_examples=40, deadline=None)
@given(
    maps=st.lists(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=40), min_size=1, max_size=4),
    parts=st.integers(1, 6),
)
def test_every_row_reaches_its_part_once(maps, parts, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shuffle")
    paths = []
    for m, keys in enumerate(maps):
        keys = np.array(keys, dtype=np.int64)
        table = pa.table({"key": keys, "label": pa.array([f"m{m}-{i}" for i in range(len(keys))], pa.string())})
        paths.append(str(folder / f"map-{m}.arrow"))
        write_parts(table, part_of(keys, parts), parts, paths[-1])
    seen = []
    for p in range(parts):
        got = read_part(paths, p)
        assert all(part_of(np.array([k], np.int64), parts)[0] == p for k in got.column("key").to_pylist())
        seen.extend(got.column("label").to_pylist())
    assert sorted(seen) == sorted(f"m{m}-{i}" for m, keys in enumerate(maps) for i in range(len(keys)))


@settings(max_examples=40, deadline=None)
@given(parts_of_rows=st.lists(st.integers(0, 6), max_size=60), chunk_rows=st.integers(1, 25))
def test_rows_written_a_chunk_at_a_time_read_back_per_part(parts_of_rows, chunk_rows, tmp_path_factory):
    """write_sorted_parts builds rows in chunks of whole parts; each part reads back exactly its rows."""
    from doughflow.data.dedup.fileshuffle import write_sorted_parts

    path = str(tmp_path_factory.mktemp("sorted") / "map.arrow")
    part = np.sort(np.asarray(parts_of_rows, np.int64))
    built = []

    def rows_of(lo: int, hi: int) -> pa.Table:
        built.append(hi - lo)
        return pa.table({"row": pa.array(np.arange(lo, hi), pa.int64()), "part": pa.array(part[lo:hi], pa.int64())})

    write_sorted_parts(rows_of, part, 7, path, chunk_rows)
    for p in range(7):
        got = read_part([path], p)
        assert got.column("part").to_pylist() == [p] * int((part == p).sum())
        assert got.column("row").to_pylist() == np.nonzero(part == p)[0].tolist()
    assert sum(built) == len(part)
