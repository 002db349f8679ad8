"""The vectorised MinHash path must reproduce datasketch's hash values exactly."""

import numpy as np
import pyarrow as pa
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.minhash import (MinHasher, char_shingle_hash, normalise_text, reference_shingles, shingle_hash,
                                    text_signatures)

words = st.lists(st.sampled_from(["pizza", "crust", "hot", "Cold!", "the", "olive", "a", "b", "ça"]), max_size=12)
texts = st.lists(words.map(" ".join), min_size=1, max_size=8)


def datasketch_signature(text: str, kind: str, size: int, num_perm: int, seed: int, scheme: str) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=shingle_hash if kind == "word" else char_shingle_hash)
    shingles = reference_shingles(text, kind, size)
    if shingles:
        m.update_batch([s.encode() for s in shingles])
    return m.hashvalues.astype(np.uint64)


@settings(max_examples=40, deadline=None)
@given(texts, st.sampled_from(["word", "char"]), st.integers(1, 4), st.sampled_from(["affine32", "legacy"]),
       st.integers(0, 5))
def test_signatures_equal_datasketch(batch, kind, size, scheme, seed):
    normal = normalise_text(pa.array(batch))
    ours = text_signatures(normal, kind=kind, size=size, hasher=MinHasher(32, seed, scheme))
    for row, text in zip(ours, normal.to_pylist()):
        assert np.array_equal(row.astype(np.uint64), datasketch_signature(text, kind, size, 32, seed, scheme))


def test_permutations_equal_datasketch_default_sha1():
    """With datasketch's default hash function: the permutation + min step alone is exact too."""
    shingles = [f"shingle {i}".encode() for i in range(300)]
    hv = np.array([sha1_hash32(s) for s in shingles], dtype=np.uint32)
    for scheme in ("affine32", "legacy"):
        reference = MinHash(num_perm=128, scheme=scheme)
        reference.update_batch(shingles)
        ours = MinHasher(128, 1, scheme).signatures(hv, np.array([len(hv)]))
        assert np.array_equal(ours[0].astype(np.uint64), reference.hashvalues.astype(np.uint64))


def test_empty_document_gets_datasketch_empty_value():
    sig = text_signatures(normalise_text(pa.array(["", "one two three"])), kind="word", size=3, hasher=MinHasher(16))
    assert np.array_equal(sig[0].astype(np.uint64), MinHash(num_perm=16).hashvalues.astype(np.uint64))
