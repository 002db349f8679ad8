"""Our LSH banding finds exactly the candidate pairs datasketch's MinHashLSH finds, given the same
signatures and threshold: the same (bands, rows) from its optimiser, and two rows share a band key
exactly when MinHashLSH puts them in the same bucket of that band."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pyarrow as pa
import pytest
from datasketch import LeanMinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup.lsh import lsh_params, minhash_band_keys
from doughflow.data.dedup.minhash import MinHasher, normalise_text, text_signatures

VOCABULARY = [f"w{i}" for i in range(40)]


def our_candidates(signatures: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    keys = minhash_band_keys(signatures, bands, rows)
    pairs = set()
    for band in keys:
        groups: dict[int, list[int]] = {}
        for index, key in enumerate(band.tolist()):
            groups.setdefault(key, []).append(index)
        pairs |= {pair for members in groups.values() for pair in itertools.combinations(members, 2)}
    return pairs


def datasketch_candidates(signatures: np.ndarray, params: tuple[int, int], seed: int, scheme: str) -> set:
    lsh = MinHashLSH(num_perm=signatures.shape[1], params=params)
    sketches = [LeanMinHash(seed=seed, hashvalues=row, scheme=scheme) for row in signatures]
    with lsh.insertion_session() as session:
        for index, sketch in enumerate(sketches):
            session.insert(index, sketch)
    return {
        tuple(sorted((index, other)))
        for index, sketch in enumerate(sketches)
        for other in lsh.query(sketch)
        if other != index
    }


# datasketch's optimiser integrates numerically (~1 s a call here): once per setting.
params_of = functools.lru_cache(lsh_params)


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9])
@pytest.mark.parametrize("fn_weight", [0.5, 0.9])
def test_bands_and_rows_are_minhashlsh_own(threshold, fn_weight):
    lsh = MinHashLSH(threshold=threshold, num_perm=128, weights=(1.0 - fn_weight, fn_weight))
    assert params_of(threshold, 128, fn_weight) == (lsh.b, lsh.r)


documents = st.lists(st.lists(st.sampled_from(VOCABULARY), min_size=3, max_size=30), min_size=2, max_size=25)


def with_near_copies(docs: list[list[str]], edits: list[int]) -> list[str]:
    """The documents plus a copy of each with a few words replaced: pairs that LSH should catch."""
    copies = [doc[:edit] + ["edited"] + doc[edit + 1 :] for doc, edit in zip(docs, edits)]
    return [" ".join(words) for words in docs + copies]


@settings(max_examples=30, deadline=None)
@given(
    documents,
    st.lists(st.integers(0, 29), min_size=25, max_size=25),
    st.sampled_from([0.5, 0.9]),
    st.sampled_from([(64, 1), (128, 7)]),
    st.sampled_from(["affine32", "legacy"]),
)
def test_candidates_equal_minhashlsh(docs, edits, threshold, perm_seed, scheme):
    num_perm, seed = perm_seed
    texts = normalise_text(pa.array(with_near_copies(docs, edits)))
    signatures = text_signatures(texts, kind="word", size=2, hasher=MinHasher(num_perm, seed, scheme))
    bands, rows = params_of(threshold, num_perm, 0.9)
    assert our_candidates(signatures, bands, rows) == datasketch_candidates(signatures, (bands, rows), seed, scheme)


def test_planted_copies_are_candidates_in_both():
    docs = [[VOCABULARY[(i * 7 + j) % 40] for j in range(20)] for i in range(6)]
    texts = normalise_text(pa.array(with_near_copies(docs, [3] * 6)))
    signatures = text_signatures(texts, kind="word", size=2, hasher=MinHasher(128, 1, "affine32"))
    bands, rows = params_of(0.5, 128, 0.9)
    ours = our_candidates(signatures, bands, rows)
    assert ours == datasketch_candidates(signatures, (bands, rows), 1, "affine32")
    assert {(i, i + 6) for i in range(6)} <= ours  # each document with its edited copy
