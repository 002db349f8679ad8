"""The file shuffle hands every row to exactly its part, whatever the number of map files and parts."""

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup.fileshuffle import part_of, read_part, write_parts


@settings(max_examples=40, deadline=None)
@given(maps=st.lists(st.lists(st.integers(-2**63, 2**63 - 1), max_size=40), min_size=1, max_size=4),
       parts=st.integers(1, 6))
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
