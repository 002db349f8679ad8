"""The one pass over the data: per shard, a small "sketch" row per input row.

Every later decision (exact and near-dup, caps, clusters) reads sketches only, never images or
texts again, so the shuffles move tens to hundreds of bytes per row. A row's key is a 64-bit hash
of its id: decisions depend on content and ids, not on where a row sits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from doughflow.data.dedup.minhash import MinHasher, normalised_words, text_signatures, word_signatures
from doughflow.data.dedup.signals import (
    CONTENT_HASH,
    EMBEDDING,
    EMBEDDING_WIDTH,
    SIGNATURE,
    THUMBNAIL,
    SignalSpec,
    binary_matrix,
    compute_signals,
    content_hash,
    stored_spec,
    usable,
)


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
    image_hash_size: int = 22
    image_hash: str = "spectrum"
    thumb_size: int = 32
    image_blocks: int = 12  # images: pigeonhole blocks of the signature written as band shuffle files
    rank_seed: int = 29
    features: bool = False
    ranks: bool = True  # the caps' seeded rank column (only caps and cluster sampling read it)
    signatures: bool = True  # the MinHash / image hash column (text with exact verification needs none)
    lsh_bands: int = 0  # text: bands x rows of the LSH written as shuffle files by this pass
    lsh_rows: int = 0
    parts: int = 0  # > 0: also write the exact-dedup and LSH shuffle files beside the sketch
    modality: str = "image"  # "text": rows are compared on text_column whatever the near-dup kind

    def payload_is_text(self, names: list[str] | None = None) -> bool:
        """Whether rows are hashed by their text (else by their image). Without a modality, a shard
        with the text column and no image column is text (the review corpus, kind none)."""
        if self.modality == "text" or self.kind == "text":
            return True
        return (
            names is not None and self.kind == "none" and self.text_column in names and self.image_column not in names
        )


Strings: TypeAlias = Sequence[str] | pa.Array | pa.ChunkedArray  # a list of str or an Arrow string column


def _string_array(values: Strings) -> pa.Array:
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(list(values), pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_large_string(array.type):
        array = array.cast(pa.string())
    return pc.fill_null(array, "") if array.null_count else array


def string_keys(values: Strings, seed: int = 0) -> np.ndarray:
    """MurmurHash64A of each string's UTF-8 bytes (a list of str or an Arrow string array), in one
    compiled loop over Arrow's buffers: no Python object per row."""
    from doughflow.data.dedup.minhash import _string_buffers
    from doughflow.data.dedup.textkernels import string_hashes

    array = _string_array(values)
    if len(array) == 0:
        return np.zeros(0, np.int64)
    data, offsets = _string_buffers(array)
    return string_hashes(data, offsets, seed).view(np.int64)


def id_keys(ids: Strings) -> np.ndarray:
    """The 64-bit key of each id: what every step joins and filters on."""
    return string_keys(ids, 0)


def rank_keys(ids: Strings, seed: int) -> np.ndarray:
    """A seeded pseudo-random rank per id: caps keep the lowest ranks, reproducibly. MurmurHash64A
    of the id under a seed derived from ``seed``, in the same compiled loop as the keys."""
    return string_keys(ids, xxhash.xxh3_64_intdigest(f"rank:{seed}".encode()) & 0x7FFFFFFFFFFFFFFF)


def content_digests(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A 128-bit hash of each (normalised) text, as two int64 columns: MurmurHash64A under two seeds."""
    return string_keys(texts, 0x5EED0001), string_keys(texts, 0x5EED0002)


def _split128(digests: list[bytes] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(digests, np.ndarray):
        raw = np.ascontiguousarray(digests).view(np.int64).reshape(-1, 2)
    else:
        raw = np.frombuffer(b"".join(digests), dtype=np.int64).reshape(-1, 2) if digests else np.zeros((0, 2), np.int64)
    return raw[:, 0].copy(), raw[:, 1].copy()


def _binary_rows(matrix: np.ndarray) -> pa.Array:
    """Fixed-width rows of a 2-D array as one binary value each (cheap to store and shuffle)."""
    width = matrix.shape[1] * matrix.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(matrix), [None, pa.py_buffer(np.ascontiguousarray(matrix).tobytes())]
    ).cast(pa.binary())


def rows_matrix(values: np.ndarray, dtype: npt.DTypeLike, width: int) -> np.ndarray:
    """Inverse of _binary_rows for a pandas/arrow column of bytes."""
    if len(values) == 0:
        return np.zeros((0, width), dtype=dtype)
    return np.frombuffer(b"".join(values), dtype=dtype).reshape(len(values), width)


def signal_spec(spec: SketchSpec) -> SignalSpec:
    return SignalSpec(spec.image_hash, spec.image_hash_size, spec.thumb_size, spec.features)


def _decoded_signals(images: list[bytes], spec: SketchSpec) -> tuple[list[bytes], dict[str, np.ndarray]]:
    """Pixel hashes and signals of images that validation did not sign (the only decode here)."""
    from doughflow.data.imagecodec import decode_image

    pixels = [decode_image(data) for data in images]
    return [content_hash(p) for p in pixels], compute_signals(pixels, signal_spec(spec))


def text_features(texts: list[str], dims: int = 256) -> np.ndarray:
    """Hashed, l2-normalised word counts: TF-IDF's cheap cousin that needs no vocabulary."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectoriser = HashingVectorizer(n_features=dims, alternate_sign=False, norm="l2")
    return vectoriser.transform(texts).toarray().astype(np.float32)


def sketch_shard(path: str, out_path: str, spec: SketchSpec) -> tuple[int, pd.DataFrame]:
    """Write the sketch of one shard; return (rows read, quarantined rows with reasons). With
    ``spec.parts``, also the exact-dedup shuffle file (``out_path.exact.arrow``: key, id, h1, h2 by
    h1) and for text the LSH band file (``out_path.bands.arrow``: bucket, key by bucket)."""
    columns = [spec.id_column]
    if spec.cap_column:
        columns.append(spec.cap_column)
    schema = pq.read_schema(path)
    payload = spec.text_column if spec.payload_is_text(schema.names) else spec.image_column
    signed = (
        payload == spec.image_column
        and CONTENT_HASH in schema.names
        and (spec.kind != "image" and not spec.features or usable(stored_spec(schema), signal_spec(spec)))
    )
    if signed:  # validation decoded these images once and stored what we need beside them
        columns += (
            [CONTENT_HASH] + ([SIGNATURE] if spec.kind == "image" else []) + ([EMBEDDING] if spec.features else [])
        )
    else:
        columns.append(payload)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; columns present: {schema.names}")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"{path}: unreadable Parquet shard ({error})") from error
    ids = pc.cast(table.column(spec.id_column), pa.string()).combine_chunks()
    quarantine = []
    keep = pc.fill_null(pc.not_equal(ids, ""), False).to_numpy(zero_copy_only=False)
    if payload == spec.text_column:
        kind = table.schema.field(payload).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ValueError(f"{path}: column {payload!r} must be text (string), got {kind}")
        normal, word_hash, doc_offsets = normalised_words(table.column(payload))
        empty = np.diff(doc_offsets) == 0
        for row in np.nonzero(empty & keep)[0]:
            quarantine.append((ids[row].as_py(), f"{payload}: empty text", path, int(row)))
        keep &= ~empty
    for row in np.nonzero(~keep)[0]:
        value = ids[row].as_py()
        if value is None or value == "":
            quarantine.append((value, f"{spec.id_column}: missing id", path, int(row)))
    quarantine.sort(key=lambda q: q[3])
    index = pa.array(np.nonzero(keep)[0])
    ids_kept = ids.take(index)
    keys = id_keys(ids_kept)
    out = {"key": keys, "id": ids_kept}
    if spec.ranks:
        out["rank"] = rank_keys(ids_kept, spec.rank_seed)
    if spec.cap_column:
        out["group"] = pc.cast(table.column(spec.cap_column), pa.string()).take(index)
    sig = feats = thumbs = None
    digests: np.ndarray | list[bytes]
    if payload == spec.text_column:
        texts = normal.take(index)
        out["h1"], out["h2"] = content_digests(texts)
        if spec.kind == "text" and spec.shingle == "word":
            hasher = MinHasher(spec.num_perm, spec.seed, spec.scheme)
            sig = word_signatures(word_hash, doc_offsets, spec.shingle_size, hasher)[index.to_numpy()]
        elif spec.kind == "text":
            sig = text_signatures(
                texts,
                kind=spec.shingle,
                size=spec.shingle_size,
                hasher=MinHasher(spec.num_perm, spec.seed, spec.scheme),
            )
        if spec.features:
            feats = text_features(texts.to_pylist())
    else:
        if signed:
            digests = binary_matrix(table.column(CONTENT_HASH).take(index).cast(pa.binary(16)), 16)
            signals = {
                name: binary_matrix(table.column(name).take(index), width)
                for name, width in ((SIGNATURE, signal_spec(spec).signature_bytes), (EMBEDDING, EMBEDDING_WIDTH))
                if name in table.column_names
            }
        else:
            digests, signals = _decoded_signals(table.column(payload).take(index).to_pylist(), spec)
            if spec.kind == "image":
                thumbs = signals[THUMBNAIL]  # kept in the sketch: verification reads them there
        if spec.kind == "image":
            sig = signals[SIGNATURE]
        if spec.features:
            feats = signals[EMBEDDING].astype(np.float32) / 255.0
        out["h1"], out["h2"] = _split128(digests)
    if spec.parts:
        _write_shuffle_files(out, sig, spec, out_path)
    arrays = {name: pa.array(value) if not isinstance(value, pa.Array) else value for name, value in out.items()}
    if sig is not None and spec.signatures and spec.kind == "text":
        arrays["sig"] = _binary_rows(sig)
    if feats is not None:
        arrays["feat"] = _binary_rows(feats)
    if thumbs is not None:
        arrays["thumb"] = _binary_rows(thumbs)
    pq.write_table(pa.table(arrays), out_path)
    frame = pd.DataFrame(quarantine, columns=["id", "reason", "source_file", "source_row"])
    return table.num_rows, frame


def _write_shuffle_files(out: dict, sig: np.ndarray | None, spec: SketchSpec, out_path: str) -> None:
    """Map side of the exact-dedup and LSH shuffles (doughflow.data.dedup.fileshuffle)."""
    from doughflow.data.dedup.fileshuffle import part_of, write_parts
    from doughflow.data.dedup.lsh import minhash_band_keys, pigeonhole_keys

    exact = pa.table({"key": out["key"], "id": out["id"], "h1": out["h1"], "h2": out["h2"]})
    write_parts(exact, part_of(out["h1"], spec.parts), spec.parts, f"{out_path}.exact.arrow")
    if sig is not None and spec.kind == "image":
        buckets = pigeonhole_keys(sig, spec.image_blocks - 1).reshape(-1)
        owners = np.tile(out["key"], spec.image_blocks)
        write_parts(
            pa.table({"bucket": buckets, "key": owners}),
            part_of(buckets, spec.parts),
            spec.parts,
            f"{out_path}.bands.arrow",
        )
    elif sig is not None and spec.lsh_bands:
        buckets = minhash_band_keys(sig, spec.lsh_bands, spec.lsh_rows).reshape(-1)
        owners = np.tile(out["key"], spec.lsh_bands)
        write_parts(
            pa.table({"bucket": buckets, "key": owners}),
            part_of(buckets, spec.parts),
            spec.parts,
            f"{out_path}.bands.arrow",
        )
