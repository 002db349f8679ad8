"""Vectorised text shingling and MinHash signatures, bit-identical to datasketch's MinHash.

Why not datasketch per document: its per-shingle Python loop runs ~1k docs/s. Here a whole shard is
shingled with Arrow kernels (words are hashed once per distinct word, shingles are combined with
numpy arithmetic) and the permutations are applied as one matrix operation. The permutation
parameters and arithmetic are datasketch's own (``affine32``, its default since 2.0, or ``legacy``),
so ``MinHash(num_perm, seed, hashfunc=shingle_hash, scheme=...)`` over the same shingles gives exactly
the same hash values; tests check that against datasketch itself.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

MERSENNE = np.uint64((1 << 61) - 1)
MAX32 = np.uint64((1 << 32) - 1)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK_CELLS = 1 << 18  # shingles x permutations per block: ~1 MB of uint32, stays in cache


def normalise_words(texts: pa.Array) -> pa.Array:
    """The words of each text, lower case, punctuation removed (a list array). Splitting is what
    collapses whitespace: a whitespace regex over the texts cost 3x the split (measured)."""
    stripped = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), r"[^\w\s]+", ""))
    stripped = pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)  # no words, not [""]
    return pc.utf8_split_whitespace(stripped)


def normalise_text(texts: pa.Array) -> pa.Array:
    """Lower case, punctuation removed, whitespace collapsed: what "the same text" means here."""
    joined = pc.binary_join(normalise_words(texts), " ")
    return pc.if_else(pc.is_null(texts), pa.scalar(None, pa.string()), pc.fill_null(joined, ""))


def _fold(h: np.ndarray | np.uint64, w: np.ndarray | np.uint64):
    with np.errstate(over="ignore"):
        return h * _MIX + w


def _to32(h: np.ndarray) -> np.ndarray:
    return ((h ^ (h >> np.uint64(32))) & MAX32).astype(np.uint32)


def shingle_hash(shingle: bytes | str) -> int:
    """Reference 32-bit hash of one shingle (words joined by single spaces), for datasketch's
    ``hashfunc``: the vectorised path computes exactly this for every shingle."""
    text = shingle.decode() if isinstance(shingle, bytes) else shingle
    h = None
    for word in text.split(" "):
        w = np.uint64(xxhash.xxh3_64_intdigest(word.encode()))
        h = w if h is None else _fold(h, w)
    return int(_to32(np.array([h], dtype=np.uint64))[0])


def char_shingle_hash(shingle: bytes | str) -> int:
    data = shingle.encode() if isinstance(shingle, str) else shingle
    return xxhash.xxh32_intdigest(data)


def reference_shingles(text: str, kind: str, size: int) -> list[str]:
    """Shingles of one normalised text as datasketch would be fed them (tests and exact checks)."""
    if kind == "char":
        if not text:
            return []
        return [text[i:i + size] for i in range(max(1, len(text) - size + 1))]
    words = text.split(" ") if text else []
    if not words:
        return []
    return [" ".join(words[i:i + size]) for i in range(max(1, len(words) - size + 1))]


def word_shingle_hashes(texts: pa.Array, size: int, words: pa.Array | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(32-bit hash per shingle, shingles per document) for normalised texts (or their ``words``,
    when already split), without a Python loop over words: each distinct word is hashed once,
    shingles are folded with numpy."""
    if words is None:
        texts = pc.if_else(pc.equal(texts, ""), pa.scalar(None, pa.string()), texts)  # "" splits into [""]
        words = pc.utf8_split_whitespace(texts)
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    offsets = words.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    counts = np.diff(offsets)
    flat = words.flatten()
    if len(flat) == 0:
        return np.zeros(0, np.uint32), np.zeros(len(counts), np.int64)
    encoded = pc.dictionary_encode(flat)
    vocabulary = encoded.dictionary.to_pylist()
    vocab_hash = np.fromiter((xxhash.xxh3_64_intdigest(w.encode()) for w in vocabulary), dtype=np.uint64, count=len(vocabulary))
    word_hash = vocab_hash[encoded.indices.to_numpy(zero_copy_only=False)]
    n = len(word_hash)
    doc_of_word = np.repeat(np.arange(len(counts)), counts)
    end = offsets[1:][doc_of_word]  # one past the last word of each word's document
    position = np.arange(n)
    h = word_hash.copy()
    for j in range(1, size):
        take = position + j < end
        nxt = word_hash[np.minimum(position + j, n - 1)]
        h = np.where(take, _fold(h, nxt), h)
    per_doc = np.where(counts > 0, np.maximum(1, counts - size + 1), 0)
    starts = np.repeat(offsets[:-1], per_doc) + (np.arange(per_doc.sum()) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc))
    return _to32(h[starts]), per_doc


def char_shingle_hashes(texts: pa.Array, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Character n-gram hashes; a Python loop per shingle, meant for short strings."""
    hashes: list[int] = []
    per_doc = []
    for text in texts.to_pylist():
        shingles = reference_shingles(text or "", "char", size)
        hashes.extend(xxhash.xxh32_intdigest(s.encode()) for s in shingles)
        per_doc.append(len(shingles))
    return np.array(hashes, dtype=np.uint32), np.array(per_doc, dtype=np.int64)


class MinHasher:
    """datasketch's permutations for (num_perm, seed, scheme), applied to many documents at once."""

    def __init__(self, num_perm: int = 128, seed: int = 1, scheme: str = "affine32"):
        from datasketch import MinHash

        self.num_perm, self.seed, self.scheme = num_perm, seed, scheme
        a, b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
        self.a, self.b = np.asarray(a), np.asarray(b)
        self.empty = np.uint32(0xFFFFFFFF)

    def _permute(self, hv: np.ndarray) -> np.ndarray:
        """num_perm x len(hv): permutations along rows, so the per-document min runs along the
        contiguous axis (4x faster than reducing along columns)."""
        if self.scheme == "affine32":
            h = hv.astype(np.uint32)
            with np.errstate(over="ignore"):
                h = h ^ (h >> np.uint32(16))
                h = h * np.uint32(0x85EBCA6B)
                h = h ^ (h >> np.uint32(13))
                h = h * np.uint32(0xC2B2AE35)
                h = h ^ (h >> np.uint32(16))
                return self.a[:, None] * h[None, :] + self.b[:, None]
        h = hv.astype(np.uint64)
        with np.errstate(over="ignore"):
            x = self.a[:, None] * h[None, :] + self.b[:, None]
        x = (x & MERSENNE) + (x >> np.uint64(61))  # x mod (2^61 - 1) without a division
        x = np.where(x >= MERSENNE, x - MERSENNE, x)
        return (x & MAX32).astype(np.uint32)

    def signatures(self, hashes: np.ndarray, per_doc: np.ndarray) -> np.ndarray:
        """One row of num_perm uint32 per document; documents without shingles get datasketch's
        empty value (all 0xFFFFFFFF)."""
        out = np.full((len(per_doc), self.num_perm), self.empty, dtype=np.uint32)
        doc_start = np.concatenate([[0], np.cumsum(per_doc)])
        block = max(1, _CHUNK_CELLS // self.num_perm)
        d = 0
        while d < len(per_doc):
            lo = doc_start[d]
            e = int(np.searchsorted(doc_start, lo + block, side="right")) - 1
            e = max(e, d + 1)
            e = min(e, len(per_doc))
            hi = doc_start[e]
            if hi > lo:
                permuted = self._permute(hashes[lo:hi])
                nonempty = np.nonzero(per_doc[d:e])[0]
                starts = doc_start[d:e][nonempty] - lo
                out[d + nonempty] = np.minimum.reduceat(permuted, starts, axis=1).T
            d = e
        return out


def text_signatures(texts: pa.Array, *, kind: str, size: int, hasher: MinHasher, words: pa.Array | None = None) -> np.ndarray:
    """MinHash rows for already normalised texts (``words``: the same, already split)."""
    if kind == "char":
        hashes, per_doc = char_shingle_hashes(texts, size)
    else:
        hashes, per_doc = word_shingle_hashes(texts, size, words)
    return hasher.signatures(hashes, per_doc)
