"""Image near-duplicate candidates, found and verified on the workers through file shuffles.

Candidates: the sketch pass wrote each row's signature blocks as (bucket, key) pairs split by
bucket (doughflow.data.dedup.fileshuffle); one task per part pairs the rows of each bucket.
Verification: per source shard, the thumbnails of rows that end a candidate edge are read (from
the validated shard's thumbnail column, or the sketch when validation did not sign the images)
and sent to part ``edge % parts``; per part both ends meet and are scored by
``imagesig.fourier_correlation``. Thumbnails never pass through the driver, which holds only the
candidate edges (two int64 each) and gets back a score per edge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.data.dedup.fileshuffle import load_npz, read_part, write_parts
from doughflow.data.dedup.imagesig import fourier_correlation
from doughflow.data.dedup.reduce import in_sorted, shared_buckets
from doughflow.data.dedup.signals import THUMBNAIL, binary_matrix
from doughflow.data.dedup.sketch import id_keys


def bucket_pairs_sorted(bucket: np.ndarray, key: np.ndarray, pair_limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges (a < b) of rows sharing a bucket: every pair in buckets of up to ``pair_limit`` rows
    (a copy meets its original directly, not only through the bucket's smallest key, which may
    be an unrelated row that shares one block by chance), a star to the smallest key in larger
    ones. Vectorised per bucket size; the same edges whatever the order of the input rows."""
    empty = np.zeros(0, np.int64)
    if len(bucket) == 0:
        return empty, empty
    order = np.lexsort((key, bucket))
    bucket, key = bucket[order], key[order]
    distinct = np.r_[True, (bucket[1:] != bucket[:-1]) | (key[1:] != key[:-1])]  # a key twice in one bucket counts once
    bucket, key = bucket[distinct], key[distinct]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    sizes = np.diff(np.r_[starts, len(bucket)])
    left, right = [], []
    for size in np.unique(sizes[sizes >= 2]):
        first = starts[sizes == size]
        if size <= pair_limit:
            i, j = np.triu_indices(int(size), k=1)
            left.append((first[:, None] + i[None, :]).ravel())
            right.append((first[:, None] + j[None, :]).ravel())
        else:
            left.append(np.repeat(first, size - 1))
            right.append((first[:, None] + np.arange(1, size)[None, :]).ravel())
    if not left:
        return empty, empty
    a, b = key[np.concatenate(left)], key[np.concatenate(right)]
    pairs = np.unique(np.stack([a, b], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def band_part(
    map_paths: list[str], part: int, removed_keys: np.ndarray, pair_limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Reduce side of the signature-block shuffle: candidate edges of this part's buckets among rows
    no earlier step removed (``removed_keys`` sorted)."""
    bucket, key = shared_buckets(read_part(map_paths, part), removed_keys)
    return bucket_pairs_sorted(bucket, key, pair_limit)


def endpoint_thumbnails(
    source_path: str, sketch_path: str, out_path: str, *, id_column: str, edges_path: str, parts: int, thumb_size: int
) -> int:
    """Map side: (edge, side, id, thumbnail) for this shard's edge ends, split by ``edge % parts``."""
    edges = load_npz(edges_path)
    a, b, ends = edges["a"], edges["b"], edges["ends"]
    sketch_names = pq.read_schema(sketch_path).names
    if "thumb" in sketch_names:
        table = pq.read_table(sketch_path, columns=["key", "id", "thumb"])
        keys, ids, thumbs = table.column("key").to_numpy(), table.column("id"), table.column("thumb")
    else:
        table = pq.read_table(source_path, columns=[id_column, THUMBNAIL])
        ids = pc.cast(table.column(id_column), pa.string())
        keys, thumbs = id_keys(ids), table.column(THUMBNAIL)
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    rows = np.flatnonzero(in_sorted(keys, ends))
    order = np.argsort(keys[rows], kind="stable")
    rows, sorted_keys = rows[order], keys[rows][order]
    edge_parts, side_parts, row_parts = [], [], []
    for end, ends_of_side in ((0, a), (1, b)):
        hit = np.flatnonzero(in_sorted(ends_of_side, sorted_keys))
        edge_parts.append(hit)
        side_parts.append(np.full(len(hit), end, np.int8))
        row_parts.append(rows[np.searchsorted(sorted_keys, ends_of_side[hit])])
    edge, side, row = np.concatenate(edge_parts), np.concatenate(side_parts), np.concatenate(row_parts)
    take = pa.array(row, pa.int64())
    width = thumb_size * thumb_size
    thumb_rows = binary_matrix(thumbs.take(take) if len(row) else pa.array([], pa.binary(width)), width)
    from doughflow.data.dedup.signals import fixed_binary

    write_parts(
        pa.table({"edge": edge, "side": side, "id": ids.take(take), "thumb": fixed_binary(thumb_rows)}),
        edge % parts,
        parts,
        out_path,
    )
    return len(rows)


def verify_part(
    map_paths: list[str], part: int, thumb_size: int, max_shift: float, threshold: float, examples: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Reduce side: (edge, score) of every edge of this part, and the ``examples`` passing pairs
    with the lowest (id_a, id_b), so id strings per duplicate stay on the worker."""
    empty_pairs = pd.DataFrame(
        {"id_a": pd.Series(dtype="object"), "id_b": pd.Series(dtype="object"), "score": pd.Series(dtype="float64")}
    )
    table = read_part(map_paths, part)
    if table is None or table.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0), empty_pairs
    edge = table.column("edge").to_numpy()
    side = table.column("side").to_numpy()
    order = np.lexsort((side, edge))
    edge, side = edge[order], side[order]
    first = np.flatnonzero((side[:-1] == 0) & (side[1:] == 1) & (edge[:-1] == edge[1:]))
    left, right = order[first], order[first + 1]
    thumbs = binary_matrix(table.column("thumb"), thumb_size * thumb_size).reshape(-1, thumb_size, thumb_size)
    score = np.zeros(len(first))
    for lo in range(0, len(first), 4096):  # bounded temporaries
        hi = lo + 4096
        score[lo:hi] = fourier_correlation(thumbs[left[lo:hi]], thumbs[right[lo:hi]], max_shift)
    ids = table.column("id").combine_chunks()
    passing = np.flatnonzero(score >= threshold)
    pairs = pd.DataFrame(
        {
            "id_a": ids.take(pa.array(left[passing], pa.int64())).to_pylist(),
            "id_b": ids.take(pa.array(right[passing], pa.int64())).to_pylist(),
            "score": score[passing],
        }
    )
    pairs = pairs.sort_values(["id_a", "id_b"]).head(examples).reset_index(drop=True) if len(pairs) else empty_pairs
    return edge[first].astype(np.int64), score, pairs
