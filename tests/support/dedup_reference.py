"""The near-dup component choice in one process: the reference the distributed stage is tested
against (and benchmarks/dedup_phases.py times), kept out of the shipped package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from doughflow.data.dedup import reduce as R
from doughflow.data.dedup.lsh import components
from doughflow.data.dedup.sketch import id_keys


def _arrow_strings(values: object) -> pa.Array:
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.string())


def component_removals(verified: pd.DataFrame, keep: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the ``keep`` lowest ids of each connected component of verified id pairs, in one process
    (the stage runs the same choice on workers)."""
    if len(verified) == 0:
        return R.empty_removed(), pd.DataFrame({"id": [], "group": []})
    ids = pa.concat_arrays([_arrow_strings(verified["id_a"]), _arrow_strings(verified["id_b"])])
    encoded = pc.dictionary_encode(ids)
    codes = encoded.indices.to_numpy().astype(np.int64)
    half = len(verified)
    nodes, labels = components(codes[:half], codes[half:])
    member = encoded.dictionary.take(pa.array(nodes))
    removed, members = R.component_choice(pa.table({"component": labels, "key": id_keys(member), "id": member}), keep)
    groups = members.select(["id", "group"])
    if removed.num_rows == 0:
        return R.empty_removed(), groups.to_pandas(types_mapper=pd.ArrowDtype)
    return removed.to_pandas(types_mapper=pd.ArrowDtype), groups.to_pandas(types_mapper=pd.ArrowDtype)
