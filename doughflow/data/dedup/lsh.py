"""LSH banding, bucket edges and connected components: the parts of near-dup that do not care
whether a signature came from MinHash (text) or a perceptual hash (images).

A bucket of m rows yields m-1 edges, a star to its smallest key, never m^2 pairs; connected
components over those edges are the near-duplicate groups. Keys are 64-bit hashes of the row id,
not positions, so nothing here depends on how rows are partitioned or ordered.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

_MIX = np.uint64(0x9E3779B97F4A7C15)


def lsh_params(threshold: float, num_perm: int, false_negative_weight: float) -> tuple[int, int]:
    """(bands, rows) from datasketch's own optimiser, so the choice matches MinHashLSH's."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 1.0 - false_negative_weight, false_negative_weight)


def fold_columns(values: np.ndarray, salt: int) -> np.ndarray:
    """One int64 key per row from a block of unsigned columns (and a salt, e.g. the band index)."""
    with np.errstate(over="ignore"):
        h = np.full(len(values), np.uint64(salt) * _MIX + np.uint64(0x632BE59BD9B4E019), dtype=np.uint64)
        for column in values.T.astype(np.uint64):
            h = (h ^ column) * _MIX
            h ^= h >> np.uint64(29)
    return h.view(np.int64)


def minhash_band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """bands x n keys: rows that agree on all ``rows`` values of a band share that band's key."""
    return np.stack([fold_columns(signatures[:, b * rows : (b + 1) * rows], b) for b in range(bands)])


def star_edges(buckets: pd.DataFrame) -> pd.DataFrame:
    """Edges (key -> smallest key of its bucket) for every bucket with two or more rows.
    ``buckets`` has columns bucket, key; duplicate (bucket, key) rows are harmless."""
    if buckets.empty:
        return pd.DataFrame({"a": pd.Series(dtype="int64"), "b": pd.Series(dtype="int64")})
    frame = buckets[["bucket", "key"]].drop_duplicates()
    centre = frame.groupby("bucket")["key"].transform("min")
    edges = pd.DataFrame({"a": centre.to_numpy(), "b": frame["key"].to_numpy()})
    return edges[edges["a"] != edges["b"]].drop_duplicates().reset_index(drop=True)


def components(edges_a: np.ndarray, edges_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node keys, component label per node) of the undirected graph given as edge arrays."""
    if len(edges_a) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    nodes, inverse = np.unique(np.concatenate([edges_a, edges_b]), return_inverse=True)
    half = len(edges_a)
    graph = coo_matrix((np.ones(half, dtype=np.int8), (inverse[:half], inverse[half:])), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    return nodes, labels.astype(np.int64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distance between rows of two packed uint8 arrays."""
    return np.unpackbits(np.bitwise_xor(a, b), axis=1).sum(axis=1)


def pigeonhole_keys(bits_packed: np.ndarray, max_distance: int) -> np.ndarray:
    """(max_distance+1) x n keys: two hashes within ``max_distance`` bits agree on at least one of
    max_distance+1 disjoint blocks, so bucketing by block finds every such pair."""
    bits = np.unpackbits(bits_packed, axis=1)
    blocks = np.array_split(np.arange(bits.shape[1]), max_distance + 1)
    keys = []
    for index, block in enumerate(blocks):
        packed = np.packbits(bits[:, block], axis=1)
        keys.append(fold_columns(packed, index + 1000))
    return np.stack(keys)
