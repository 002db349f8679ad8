"""The compiled MinHash path must reproduce datasketch's hash values exactly, and its fast helpers
(ASCII normalisation, string hashes, pair Jaccard) their pure-Python references."""

import numpy as np
import pyarrow as pa
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup.minhash import (
    MinHasher,
    char_shingle_hash,
    normalise_text,
    normalise_words,
    reference_shingles,
    shingle_hash,
    text_signatures,
)

words = st.lists(st.sampled_from(["pizza", "crust", "hot", "Cold!", "the", "olive", "a", "b", "ça"]), max_size=12)
texts = st.lists(words.map(" ".join), min_size=1, max_size=8)


def datasketch_signature(text: str, kind: str, size: int, num_perm: int, seed: int, scheme: str) -> np.ndarray:
    m = MinHash(
        num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=shingle_hash if kind == "word" else char_shingle_hash
    )
    shingles = reference_shingles(text, kind, size)
    if shingles:
        m.update_batch([s.encode() for s in shingles])
    return m.hashvalues.astype(np.uint64)


@settings(max_examples=40, deadline=None)
@given(
    texts,
    st.sampled_from(["word", "char"]),
    st.integers(1, 4),
    st.sampled_from(["affine32", "legacy"]),
    st.integers(0, 5),
)
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


ascii_texts = st.lists(st.text(alphabet="abcXYZ_09 \t\n\r\f\v.,!'-", max_size=40) | st.none(), min_size=1, max_size=10)


@settings(max_examples=80, deadline=None)
@given(ascii_texts)
def test_compiled_ascii_normalisation_equals_the_arrow_kernels(batch):
    """The one-pass ASCII path gives the same normalised texts and word hashes as Arrow's kernels."""
    from doughflow.data.dedup.minhash import normalised_words, word_arrays, word_hash

    raw = pa.array(batch, pa.string())
    normal, hashes, offsets = normalised_words(raw)
    assert normal.to_pylist() == [t or "" for t in normalise_text(raw).to_pylist()]
    words = [w for t in normal.to_pylist() for w in (t.split(" ") if t else [])]
    assert hashes.tolist() == [word_hash(w) for w in words]
    ref_hashes, ref_offsets = word_arrays(normalise_words(raw))
    assert np.array_equal(offsets, ref_offsets) and np.array_equal(hashes, ref_hashes)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=8), st.integers(0, 2**32))
def test_compiled_string_hash_equals_the_reference_murmur64a(values, seed):
    from doughflow.data.dedup.minhash import _string_buffers, murmur64a
    from doughflow.data.dedup.textkernels import string_hashes

    array = pa.array(values, pa.binary()).cast(pa.string(), safe=False)
    data, offsets = _string_buffers(array)
    assert string_hashes(data, offsets, seed).tolist() == [murmur64a(v, seed) for v in values]


@settings(max_examples=40, deadline=None)
@given(texts, st.integers(1, 4))
def test_pair_jaccard_equals_the_jaccard_of_shingle_sets(batch, size):
    from doughflow.data.dedup.minhash import normalised_words, shingle_hash64, word_shingle_hashes64
    from doughflow.data.dedup.textkernels import pair_jaccard

    normal, hashes, offsets = normalised_words(pa.array(batch))
    flat, per_doc = word_shingle_hashes64(hashes, offsets, size)
    starts = np.concatenate([[0], np.cumsum(per_doc)])
    texts_ = normal.to_pylist()
    left, right = np.repeat(np.arange(len(texts_)), len(texts_)), np.tile(np.arange(len(texts_)), len(texts_))
    got = pair_jaccard(flat, starts, left, right)
    for k, (i, j) in enumerate(zip(left, right)):
        sa = set(reference_shingles(texts_[i], "word", size))
        sb = set(reference_shingles(texts_[j], "word", size))
        assert {shingle_hash64(s) for s in sa} == set(flat[starts[i] : starts[i + 1]].tolist())
        assert got[k] == len(sa & sb) / max(len(sa | sb), 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=30) | st.none(), min_size=1, max_size=8), st.integers(1, 5))
def test_compiled_character_shingles_equal_the_reference_on_any_unicode(batch, size):
    """Characters are code points: a multi-byte letter is one character of a shingle."""
    from doughflow.data.dedup.minhash import char_shingle_hash64, char_shingle_hashes64

    hashes, per_doc = char_shingle_hashes64(pa.array(batch, pa.string()), size)
    expected = [[char_shingle_hash64(s) for s in reference_shingles(text or "", "char", size)] for text in batch]
    assert per_doc.tolist() == [len(e) for e in expected]
    assert hashes.tolist() == [h for e in expected for h in e]


def test_normalisation_keeps_letters_of_every_script():
    """Only punctuation goes: accented, Cyrillic and CJK letters and combining marks stay, so such texts
    are neither empty nor all equal."""
    texts = pa.array(["Crème brûlée!", "Привет, мир!", "東京 タワー。", "नमस्ते दुनिया", "a\u00a0b", "x_y-z 3.5"])
    assert normalise_text(texts).to_pylist() == [
        "crème brûlée",
        "привет мир",
        "東京 タワー",
        "नमस्ते दुनिया",
        "a b",
        "x_yz 35",
    ]
