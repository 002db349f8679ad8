"""Text shingling and MinHash signatures, bit-identical to datasketch's MinHash.

Why not datasketch per document: its per-shingle Python loop runs ~1k docs/s. Here a whole shard is
normalised with Arrow kernels, and words are hashed, folded into shingles and permuted in one
compiled pass over Arrow's buffers (doughflow.data.dedup.textkernels). The permutation parameters and
arithmetic are datasketch's own (``affine32``, its default since 2.0, or ``legacy``), so
``MinHash(num_perm, seed, hashfunc=shingle_hash, scheme=...)`` over the same shingles gives exactly
the same hash values; tests check that against datasketch itself.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MERSENNE = np.uint64((1 << 61) - 1)
MAX32 = np.uint64((1 << 32) - 1)
_CHUNK_CELLS = 1 << 18  # shingles x permutations per block: ~1 MB of uint32, stays in cache


# What a word keeps: letters, combining marks and digits of any script, and _. RE2's \w is ASCII only, so
# "[^\w\s]" dropped every non-ASCII letter: "crème" became "crme" and Cyrillic or CJK text became empty
# (every such row an exact duplicate of the others). On ASCII text both classes keep the same bytes.
NOT_WORD = r"[^\p{L}\p{M}\p{N}_\s\p{Z}]+"


def normalise_words(texts: pa.Array) -> pa.Array:
    """The words of each text, lower case, punctuation removed (a list array). Splitting is what
    collapses whitespace (Unicode spaces included): a whitespace regex over the texts cost 3x the split
    (measured)."""
    stripped = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), NOT_WORD, ""))
    stripped = pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)  # no words, not [""]
    return pc.utf8_split_whitespace(stripped)


def normalise_text(texts: pa.Array) -> pa.Array:
    """Lower case, punctuation removed, whitespace collapsed: what "the same text" means here."""
    joined = pc.binary_join(normalise_words(texts), " ")
    return pc.if_else(pc.is_null(texts), pa.scalar(None, pa.string()), pc.fill_null(joined, ""))


_M64 = (1 << 64) - 1


def word_hash(word: bytes | str) -> int:
    """Reference 64-bit hash of one word (textkernels.word_hashes computes the same in bulk)."""
    data = word.encode() if isinstance(word, str) else word
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & _M64
    for shift, mult in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53)):
        h ^= h >> shift
        h = (h * mult) & _M64
    return h ^ (h >> 33)


def shingle_hash64(shingle: bytes | str) -> int:
    """Reference 64-bit hash of one shingle (words joined by single spaces): the word hashes folded
    as h * 0x9E3779B97F4A7C15 + w. Exact verification compares sets of these."""
    text = shingle.decode() if isinstance(shingle, bytes) else shingle
    first, *rest = text.split(" ")
    h = word_hash(first)
    for word in rest:
        h = (h * 0x9E3779B97F4A7C15 + word_hash(word)) & _M64
    return h


def shingle_hash(shingle: bytes | str) -> int:
    """Reference 32-bit hash of one shingle, for datasketch's ``hashfunc``: the compiled path
    computes exactly this for every shingle."""
    h = shingle_hash64(shingle)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


CHAR_SEED = 0xC4A5


def char_shingle_hash64(shingle: bytes | str) -> int:
    """Reference 64-bit hash of one character shingle: MurmurHash64A of its UTF-8 bytes
    (textkernels.char_shingle_hashes64 computes the same in bulk). Exact verification compares these."""
    return murmur64a(shingle.encode() if isinstance(shingle, str) else shingle, CHAR_SEED)


def char_shingle_hash(shingle: bytes | str) -> int:
    """Reference 32-bit hash of one character shingle, for datasketch's ``hashfunc``."""
    h = char_shingle_hash64(shingle)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def reference_shingles(text: str, kind: str, size: int) -> list[str]:
    """Shingles of one normalised text as datasketch would be fed them (tests and exact checks)."""
    if kind == "char":
        if not text:
            return []
        return [text[i : i + size] for i in range(max(1, len(text) - size + 1))]
    words = text.split(" ") if text else []
    if not words:
        return []
    return [" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))]


def _string_buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(utf-8 bytes, offsets from 0) of a string array, zero copy where Arrow allows."""
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(values) + 1, offset=4 * values.offset)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64)


def split_words(texts: pa.Array) -> pa.Array:
    """Words of already normalised texts ("" has none)."""
    texts = pc.if_else(pc.equal(texts, ""), pa.scalar(None, pa.string()), texts)  # "" splits into [""]
    return pc.utf8_split_whitespace(texts)


def word_arrays(words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash per word, word offsets per document) of a list<string> array of words."""
    from doughflow.data.dedup import textkernels as K

    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    doc_offsets = words.offsets.to_numpy().astype(np.int64)
    doc_offsets = doc_offsets - doc_offsets[0]
    data, offsets = _string_buffers(words.flatten())
    return K.word_hashes(data, offsets[:-1], offsets[1:]), doc_offsets


def murmur64a(data: bytes, seed: int = 0) -> int:
    """Reference MurmurHash64A (textkernels.murmur64a computes the same in bulk)."""
    m, mask = 0xC6A4A7935BD1E995, _M64
    h = (seed ^ (len(data) * m)) & mask
    blocks = len(data) // 8
    for i in range(blocks):
        k = int.from_bytes(data[8 * i : 8 * i + 8], "little")
        k = (k * m) & mask
        k ^= k >> 47
        k = (k * m) & mask
        h = ((h ^ k) * m) & mask
    tail = data[8 * blocks :]
    if tail:
        h = ((h ^ int.from_bytes(tail, "little")) * m) & mask
    h ^= h >> 47
    h = (h * m) & mask
    return h ^ (h >> 47)


def normalised_words(texts: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(normalised texts, 64-bit hash per word, word offsets per text) of raw texts. All-ASCII
    input takes one compiled pass (textkernels.normalise_ascii, equal to the Arrow kernels on
    ASCII: tested); anything else goes through Arrow's Unicode kernels."""
    from doughflow.data.dedup import textkernels as K

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if pa.types.is_large_string(texts.type):
        texts = texts.cast(pa.string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    if len(texts) and pc.all(pc.fill_null(pc.string_is_ascii(texts), True)).as_py():
        data, offsets = _string_buffers(texts)
        norm, text_offsets, starts, ends, doc_words = K.normalise_ascii(data, offsets)
        normal = pa.StringArray.from_buffers(
            len(texts), pa.py_buffer(text_offsets.astype(np.int32)), pa.py_buffer(norm)
        )
        return normal, K.word_hashes(norm, starts, ends), doc_words
    words = normalise_words(texts)
    normal = pc.fill_null(pc.binary_join(words, " "), "")
    word_hash, doc_offsets = word_arrays(words)
    return normal, word_hash, doc_offsets


def word_shingle_hashes64(word_hash: np.ndarray, doc_offsets: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash per shingle, shingles per document) from word hashes and word offsets."""
    from doughflow.data.dedup import textkernels as K

    return K.shingle_hashes64(word_hash, doc_offsets, size), K.shingles_per_doc(doc_offsets, size)


def word_signatures(word_hash: np.ndarray, doc_offsets: np.ndarray, size: int, hasher: MinHasher) -> np.ndarray:
    """MinHash rows from word hashes and word offsets per document."""
    from doughflow.data.dedup import textkernels as K

    out = np.full((len(doc_offsets) - 1, hasher.num_perm), hasher.empty, dtype=np.uint32)
    K.signatures(word_hash, doc_offsets, size, hasher.a, hasher.b, hasher.scheme == "affine32", out)
    return out


def char_shingle_hashes64(texts: pa.Array, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash per character shingle, shingles per text) of already normalised texts, in one
    compiled pass over Arrow's buffers (a Python loop per shingle ran ~0.5 us a shingle: a third of
    the time of a 60-character record)."""
    from doughflow.data.dedup import textkernels as K

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    data, offsets = _string_buffers(texts)
    return K.char_shingle_hashes64(data, offsets, size, CHAR_SEED)


def char_shingle_hashes(texts: pa.Array, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(32-bit hash per character shingle, shingles per text): what MinHash permutes."""
    hashes, per_doc = char_shingle_hashes64(texts, size)
    return (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32), per_doc


class MinHasher:
    """datasketch's permutations for (num_perm, seed, scheme), applied to many documents at once."""

    def __init__(self, num_perm: int = 128, seed: int = 1, scheme: str = "affine32") -> None:
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


def text_signatures(
    texts: pa.Array | None, *, kind: str, size: int, hasher: MinHasher, words: pa.Array | None = None
) -> np.ndarray:
    """MinHash rows for already normalised texts (``words``: the same, already split)."""
    if kind == "char":
        from doughflow.data.dedup import textkernels as K

        hashes, per_doc = char_shingle_hashes(texts, size)
        out = np.full((len(per_doc), hasher.num_perm), hasher.empty, dtype=np.uint32)
        K.hash_signatures(hashes, per_doc, hasher.a, hasher.b, hasher.scheme == "affine32", out)
        return out
    word_hash, doc_offsets = word_arrays(split_words(texts) if words is None else words)
    return word_signatures(word_hash, doc_offsets, size, hasher)
