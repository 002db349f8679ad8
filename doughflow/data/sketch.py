"""The one pass over the data: per shard, a small "sketch" row per input row.

Every later decision (exact and near-dup, caps, clusters) reads sketches only, never images or
texts again, so the shuffles move tens to hundreds of bytes per row. A row's key is a 64-bit hash
of its id: decisions depend on content and ids, not on where a row sits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from doughflow.data.imagesig import colour_histogram, image_signatures
from doughflow.data.minhash import MinHasher, normalise_words, text_signatures

CONTENT_HASH = "_content_hash"  # written by image validation: a hash of decoded pixels


@dataclass(frozen=True)
class SketchSpec:
    """What the sketch pass needs from the config, as plain values that pickle to workers."""

    id_column: str
    kind: str  # "image", "text" or "none"
    image_column: str = "image"
    text_column: str = "text"
    cap_column: str | None = None
    shingle: str = "word"
    shingle_size: int = 3
    num_perm: int = 128
    seed: int = 1
    scheme: str = "affine32"
    image_hash_size: int = 8
    image_hash: str = "phash_centred"
    thumb_size: int = 64
    rank_seed: int = 29
    features: bool = False


def id_keys(ids: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(i.encode()) for i in ids), dtype=np.uint64, count=len(ids)).view(np.int64)


def rank_keys(ids: list[str], seed: int) -> np.ndarray:
    """A seeded pseudo-random rank per id: caps keep the lowest ranks, reproducibly."""
    prefix = f"{seed}:".encode()
    return np.fromiter((xxhash.xxh3_64_intdigest(prefix + i.encode()) for i in ids), dtype=np.uint64, count=len(ids)).view(np.int64)


def _split128(digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(b"".join(digests), dtype=np.int64).reshape(-1, 2) if digests else np.zeros((0, 2), np.int64)
    return raw[:, 0].copy(), raw[:, 1].copy()


def _binary_rows(matrix: np.ndarray) -> pa.Array:
    """Fixed-width rows of a 2-D array as one binary value each (cheap to store and shuffle)."""
    width = matrix.shape[1] * matrix.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(matrix), [None, pa.py_buffer(np.ascontiguousarray(matrix).tobytes())]) \
        .cast(pa.binary())


def rows_matrix(values, dtype, width: int) -> np.ndarray:
    """Inverse of _binary_rows for a pandas/arrow column of bytes."""
    if len(values) == 0:
        return np.zeros((0, width), dtype=dtype)
    return np.frombuffer(b"".join(values), dtype=dtype).reshape(len(values), width)


def _image_signals(images: list[bytes], spec: SketchSpec) -> tuple[list[bytes], np.ndarray, np.ndarray | None, np.ndarray]:
    from doughflow.data.pizza import decode_image

    digests, feats, decoded = [], [], []
    for data in images:
        pixels = decode_image(data)
        digests.append(xxhash.xxh3_128_digest(np.ascontiguousarray(pixels).tobytes() + repr(pixels.shape).encode()))
        if spec.kind == "image":
            decoded.append(pixels)
        if spec.features:
            feats.append(colour_histogram(pixels))
    sig, thumb = image_signatures(decoded, spec.image_hash, spec.image_hash_size, spec.thumb_size)
    return digests, sig, (np.stack(feats) if feats else np.zeros((0, 64), np.float32)) if spec.features else None, thumb


def text_features(texts: list[str], dims: int = 256) -> np.ndarray:
    """Hashed, l2-normalised word counts: TF-IDF's cheap cousin that needs no vocabulary."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectoriser = HashingVectorizer(n_features=dims, alternate_sign=False, norm="l2")
    return vectoriser.transform(texts).toarray().astype(np.float32)


def sketch_shard(path: str, out_path: str, spec: SketchSpec) -> tuple[int, pd.DataFrame]:
    """Write the sketch of one shard; return (rows read, quarantined rows with reasons)."""
    columns = [spec.id_column]
    if spec.cap_column:
        columns.append(spec.cap_column)
    schema = pq.read_schema(path)
    if spec.kind == "text" or (spec.kind == "none" and spec.text_column in schema.names and spec.image_column not in schema.names):
        payload = spec.text_column
    else:
        payload = spec.image_column
    columns.append(payload)
    if payload == spec.image_column and CONTENT_HASH in schema.names:
        columns.append(CONTENT_HASH)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; columns present: {schema.names}")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"{path}: unreadable Parquet shard ({error})") from error
    ids = pc.cast(table.column(spec.id_column), pa.string()).to_pylist()
    quarantine = []
    keep = np.ones(table.num_rows, dtype=bool)
    if payload == spec.text_column:
        kind = table.schema.field(payload).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ValueError(f"{path}: column {payload!r} must be text (string), got {kind}")
        words = normalise_words(table.column(payload).combine_chunks())
        normal = pc.binary_join(words, " ")  # null for a text without words
        empty = pc.fill_null(pc.equal(pc.utf8_length(normal), 0), True).to_numpy(zero_copy_only=False)
        for row in np.nonzero(empty)[0]:
            quarantine.append((ids[row], f"{payload}: empty text", path, int(row)))
        keep &= ~empty
    for row, value in enumerate(ids):
        if value is None or value == "":
            keep[row] = False
            quarantine.append((value, f"{spec.id_column}: missing id", path, row))
    index = np.nonzero(keep)[0]
    ids_kept = [ids[i] for i in index]
    out = {"key": id_keys(ids_kept), "id": ids_kept, "rank": rank_keys(ids_kept, spec.rank_seed)}
    if spec.cap_column:
        out["group"] = pc.cast(table.column(spec.cap_column), pa.string()).take(pa.array(index)).to_pylist()
    sig = feats = thumbs = None
    if payload == spec.text_column:
        texts = normal.take(pa.array(index))
        digests = [xxhash.xxh3_128_digest(t.encode()) for t in texts.to_pylist()]
        if spec.kind == "text":
            sig = text_signatures(texts, kind=spec.shingle, size=spec.shingle_size,
                                  hasher=MinHasher(spec.num_perm, spec.seed, spec.scheme), words=words.take(pa.array(index)))
        if spec.features:
            feats = text_features(texts.to_pylist())
    else:
        images = table.column(payload).take(pa.array(index)).to_pylist()
        if spec.kind == "image" or spec.features or CONTENT_HASH not in table.column_names:
            computed, sig, feats, thumbs = _image_signals(images, spec)
        if CONTENT_HASH in table.column_names:
            digests = table.column(CONTENT_HASH).take(pa.array(index)).to_pylist()
        else:
            digests = computed
        if spec.kind != "image":
            sig = thumbs = None
    out["h1"], out["h2"] = _split128(digests)
    arrays = {name: pa.array(value) for name, value in out.items()}
    if sig is not None:
        arrays["sig"] = _binary_rows(sig)
    if feats is not None:
        arrays["feat"] = _binary_rows(feats)
    if thumbs is not None:
        arrays["thumb"] = _binary_rows(thumbs)
    pq.write_table(pa.table(arrays), out_path)
    frame = pd.DataFrame(quarantine, columns=["id", "reason", "source_file", "source_row"])
    return table.num_rows, frame
