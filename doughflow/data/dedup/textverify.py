"""Exact verification of text near-duplicate candidates on the workers: the true Jaccard of the two
documents' shingle sets (or a rapidfuzz ratio for short strings), never gathering texts here.

Map (per source shard): the shard's rows that end a candidate edge are read again, normalised and
shingled; each (edge, side) goes to part ``edge % parts`` as (edge, side, key), and each such row's id
and shingle hashes go once to every part that needs them, through doughflow.data.dedup.fileshuffle (a
row per edge end instead tripled a map task's memory: a bucket's centre ends hundreds of edges). Reduce
(per part): both sides of each edge meet, and a compiled merge of the sorted hash sets gives the Jaccard. Shingles are compared by their 64-bit hashes (a
false match needs a 64-bit collision inside one pair: about 1 in 10^16 for 40-word texts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.data.dedup.fileshuffle import load_npz, read_part, write_parts, write_sorted_parts
from doughflow.data.dedup.minhash import char_shingle_hashes64, normalised_words, word_shingle_hashes64
from doughflow.data.dedup.reduce import in_sorted
from doughflow.data.dedup.sketch import id_keys


def _shingle_lists(
    normal: pa.Array, word_hash: np.ndarray, doc_offsets: np.ndarray, kind: str, size: int
) -> pa.ListArray:
    """One list of 64-bit shingle hashes per document."""
    if kind == "word":
        hashes, per_doc = word_shingle_hashes64(word_hash, doc_offsets, size)
    else:
        hashes, per_doc = char_shingle_hashes64(normal, size)
    offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(hashes, pa.uint64()))


ROWS_PER_WRITE = 20_000  # endpoint rows built and written at once by a map task


def rows_file(map_path: str) -> str:
    """Where the map task for ``map_path`` writes its endpoint rows (key, id, shingles[, text])."""
    return f"{map_path}.rows.arrow"


def endpoint_shingles(
    path: str,
    out_path: str,
    *,
    id_column: str,
    text_column: str,
    edges_path: str,
    parts: int,
    kind: str,
    size: int,
    short_chars: int,
) -> int:
    """Map side: for this shard's edge ends, write (edge, side, key) to ``out_path`` and each end's row
    (key, id, shingles[, text]) once per part it is needed in to :func:`rows_file`; returns rows read."""
    edges = load_npz(edges_path)  # a, b, and the sorted distinct endpoints
    a, b, ends = edges["a"], edges["b"], edges["ends"]
    table = pq.read_table(path, columns=[id_column, text_column])
    ids = pc.cast(table.column(id_column), pa.string()).combine_chunks()
    keys = id_keys(pc.fill_null(ids, ""))
    rows = np.nonzero(in_sorted(keys, ends))[0]
    order = np.argsort(keys[rows], kind="stable")
    rows, sorted_keys = rows[order], keys[rows][order]
    edge_parts, side_parts, row_parts = [], [], []
    for which, ends_of_side in ((0, a), (1, b)):
        hit = np.nonzero(in_sorted(ends_of_side, sorted_keys))[0]
        edge_parts.append(hit)
        side_parts.append(np.full(len(hit), which, np.int8))
        row_parts.append(np.searchsorted(sorted_keys, ends_of_side[hit]))
    edge, side, row = np.concatenate(edge_parts), np.concatenate(side_parts), np.concatenate(row_parts)
    part = edge % parts
    write_parts(pa.table({"edge": edge, "side": side, "key": sorted_keys[row]}), part, parts, out_path)
    # a row at the centre of a big LSH bucket ends hundreds of edges: its shingles go once to each part,
    # and the parts are written a chunk at a time (4.1M candidate edges of 200k records needed 2M rows)
    width = max(len(rows), 1)
    needed = np.unique(part * width + row)  # sorted by part, then row
    needed_part, needed_row = needed // width, needed % width
    normal, word_hash, doc_offsets = normalised_words(table.column(text_column).combine_chunks().take(pa.array(rows)))
    shingles = _shingle_lists(normal, word_hash, doc_offsets, kind, size)
    row_ids = ids.take(pa.array(rows))
    short = (
        pc.if_else(pc.less_equal(pc.utf8_length(normal), short_chars), normal, pa.scalar(None, pa.string()))
        if short_chars
        else None
    )

    def rows_of(lo: int, hi: int) -> pa.Table:
        take = pa.array(needed_row[lo:hi], pa.int64())
        columns = {
            "key": pa.array(sorted_keys[needed_row[lo:hi]], pa.int64()),
            "id": row_ids.take(take),
            "shingles": shingles.take(take),
        }
        if short is not None:
            columns["text"] = short.take(take)
        return pa.table(columns)

    write_sorted_parts(rows_of, needed_part, parts, rows_file(out_path), ROWS_PER_WRITE)
    return len(rows)


def verify_part(map_paths: list[str], part: int, short_chars: int) -> pd.DataFrame:
    """Reduce side: (edge, id_a, id_b, score) for every edge of this part."""
    from rapidfuzz.fuzz import ratio

    from doughflow.data.dedup import textkernels as K

    empty = pd.DataFrame(
        {
            "edge": pd.Series(dtype="int64"),
            "id_a": pd.Series(dtype="object"),
            "id_b": pd.Series(dtype="object"),
            "score": pd.Series(dtype="float64"),
        }
    )
    ends = read_part(map_paths, part)
    if ends is None or ends.num_rows == 0:
        return empty
    edge, side, key = (ends.column(name).to_numpy() for name in ("edge", "side", "key"))
    order = np.lexsort((side, edge))
    edge, side, key = edge[order], side[order], key[order]
    first = np.nonzero((side[:-1] == 0) & (side[1:] == 1) & (edge[:-1] == edge[1:]))[0]  # an a-end then its b-end
    if not len(first):
        return empty
    table = read_part([rows_file(p) for p in map_paths], part)
    if table is None:
        return empty
    row_keys = table.column("key").to_numpy()
    by_key = np.argsort(row_keys, kind="stable")
    left = by_key[np.searchsorted(row_keys[by_key], key[first])]
    right = by_key[np.searchsorted(row_keys[by_key], key[first + 1])]
    shingles = table.column("shingles").combine_chunks()
    offsets = shingles.offsets.to_numpy().astype(np.int64)
    hashes = shingles.values.to_numpy()
    score = K.pair_jaccard(hashes, offsets, left, right)
    ids = table.column("id").combine_chunks()
    id_a, id_b = ids.take(pa.array(left)), ids.take(pa.array(right))
    if "text" in table.column_names:
        text = table.column("text").to_pylist()
        for k, (i, j) in enumerate(zip(left, right)):
            if text[i] is not None and text[j] is not None:
                score[k] = ratio(text[i], text[j]) / 100.0
    # ids as Arrow strings inside pandas: ~20 bytes each on the way to, and in, the driver
    return (
        pa.table({"edge": edge[first], "id_a": id_a, "id_b": id_b, "score": score})
        .to_pandas(types_mapper=pd.ArrowDtype)
        .astype({"edge": "int64", "score": "float64"})
    )


def verify_part_scores(
    map_paths: list[str], part: int, short_chars: int, threshold: float, examples: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """``verify_part`` for the driver: (edge, score) as numpy plus the ``examples`` passing pairs with
    the lowest (id_a, id_b), so id strings per duplicate stay on the worker."""
    scored = verify_part(map_paths, part, short_chars)
    ok = scored[scored["score"] >= threshold]
    pairs = ok.sort_values(["id_a", "id_b"]).head(examples).astype({"id_a": str, "id_b": str})
    return scored["edge"].to_numpy(np.int64), scored["score"].to_numpy(np.float64), pairs.reset_index(drop=True)
