"""What the one decode of an image computes for every later step, stored as columns beside it.

Why: validation must decode every image to know it is one, and near-dup, clustering and exact dedup
all need something computed from pixels. Decoding twice (validate, then the subsample sketch) was
the image path's largest cost: on the 6.4k-row pizza set the second decode alone took most of the
sketch's 5.97 s. So validation computes, in the same pass and in batches, the pixel hash (exact
dedup), the near-dup signature, a grayscale thumbnail (verification of candidate pairs) and a
colour embedding (the cluster cap), and writes them as fixed-width binary columns of the valid
shards. The parameters are stored in the shards' schema metadata: a later step uses the columns
only when they were computed the way it asks, and otherwise computes its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import xxhash

from doughflow.config import SubsampleConfig
from doughflow.data.dedup.imagesig import (
    EMBED_BINS,
    EMBED_SIDE,
    GRAY_SIDE,
    box_sum,
    centred_batch,
    content_histogram,
    dhash_bits,
    grayscale,
    phash_batch,
    rgb_thumbnail,
    spectrum_signature,
    thumbnails,
)

CONTENT_HASH = "_content_hash"
SIGNATURE = "_image_signature"
THUMBNAIL = "_thumbnail"
EMBEDDING = "_embedding"
SIGNAL_COLUMNS = (SIGNATURE, THUMBNAIL, EMBEDDING)
METADATA_KEY = b"doughflow.image_signals"
EMBEDDING_WIDTH = EMBED_BINS**3
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class SignalSpec:
    """How the signals are computed: the near-dup hash (``spectrum``, ``phash_centred`` or
    ``dhash``) and its side (side*side bits), the thumbnail side, and whether to embed."""

    image_hash: str = "spectrum"
    hash_size: int = 22
    thumb_size: int = 32
    embedding: bool = True

    @property
    def signature_bytes(self) -> int:
        return (self.hash_size * self.hash_size + 7) // 8

    def metadata(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_config(cls, subsample: SubsampleConfig) -> SignalSpec:
        """From a SubsampleConfig: its near-dup hash and thumbnail, and whether it clusters."""
        near = subsample.near_dup
        return cls(near.image_hash, near.image_hash_size, near.thumb_size, subsample.cluster.enabled)


def content_hash(pixels: np.ndarray) -> bytes:
    """128-bit hash of decoded pixels and shape: equal images hash equal whatever their encoding."""
    return xxhash.xxh3_128_digest(np.ascontiguousarray(pixels).tobytes() + repr(pixels.shape).encode())


def _grays(pixels: list[np.ndarray]) -> np.ndarray:
    """n x 64 x 64 float32 luminance; images of another size are box-resized first."""
    if all(p.shape == (GRAY_SIDE, GRAY_SIDE, 3) for p in pixels):
        return np.stack(pixels).astype(np.float32) @ _LUMA
    return np.stack([grayscale(p) for p in pixels])


def compute_signals(pixels: list[np.ndarray], spec: SignalSpec) -> dict[str, np.ndarray]:
    """The signal columns of a batch of decoded HxWx3 uint8 images, as n x width uint8 arrays."""
    n = len(pixels)
    out = {
        SIGNATURE: np.zeros((n, spec.signature_bytes), np.uint8),
        THUMBNAIL: np.zeros((n, spec.thumb_size**2), np.uint8),
    }
    if spec.embedding:
        out[EMBEDDING] = np.zeros((n, EMBEDDING_WIDTH), np.uint8)
    if n == 0:
        return out
    grays = _grays(pixels)
    bits = spec.hash_size * spec.hash_size
    if spec.image_hash == "spectrum":
        out[SIGNATURE] = spectrum_signature(grays, bits)
    elif spec.image_hash == "phash_centred":
        out[SIGNATURE] = phash_batch(centred_batch(grays), spec.hash_size)
    elif spec.image_hash == "dhash":
        out[SIGNATURE] = np.stack([dhash_bits(p, spec.hash_size) for p in pixels])
    else:
        raise ValueError(f"unknown image hash {spec.image_hash!r}")
    out[THUMBNAIL] = thumbnails(grays, spec.thumb_size)
    if spec.embedding:
        if all(p.shape == (GRAY_SIDE, GRAY_SIDE, 3) for p in pixels):
            factor = GRAY_SIDE // EMBED_SIDE
            small = ((box_sum(np.stack(pixels), factor, np.uint16) + factor * factor // 2) // (factor * factor)).astype(
                np.uint8
            )
        else:
            small = np.stack([rgb_thumbnail(p, EMBED_SIDE) for p in pixels])
        out[EMBEDDING] = content_histogram(small)
    return out


def fixed_binary(matrix: np.ndarray) -> pa.Array:
    """Rows of a 2-D uint8 array as one fixed-size binary value each."""
    width = matrix.shape[1]
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(matrix), [None, pa.py_buffer(np.ascontiguousarray(matrix).tobytes())]
    )


def binary_matrix(column: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """Inverse of ``fixed_binary`` for an Arrow (chunked) fixed-size binary column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.binary(width))
    if len(column) == 0:
        return np.zeros((0, width), np.uint8)
    if column.null_count:
        raise ValueError("signal column has nulls")
    if not pa.types.is_fixed_size_binary(column.type):
        return np.frombuffer(b"".join(column.to_pylist()), np.uint8).reshape(len(column), width)
    buffer = column.buffers()[1]
    return np.frombuffer(buffer, np.uint8, count=len(column) * width, offset=column.offset * width).reshape(
        len(column), width
    )


def stored_spec(schema: pa.Schema) -> SignalSpec | None:
    """The spec the signal columns of a shard were computed with, or None if it has none."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None or SIGNATURE not in schema.names or THUMBNAIL not in schema.names:
        return None
    try:
        return SignalSpec(**json.loads(raw))
    except (TypeError, ValueError):
        return None


def usable(stored: SignalSpec | None, wanted: SignalSpec) -> bool:
    """Stored signals serve ``wanted`` when computed the same way (an embedding nobody needs may be extra)."""
    return (
        stored is not None
        and (stored.image_hash, stored.hash_size, stored.thumb_size)
        == (wanted.image_hash, wanted.hash_size, wanted.thumb_size)
        and (stored.embedding or not wanted.embedding)
    )


def signals_for(subsample: SubsampleConfig, modality: str = "image") -> SignalSpec | None:
    """What validation should compute for a SubsampleConfig: nothing beyond the pixel hash unless
    image near-dup or the cluster cap will read signals; nothing for text rows (never decoded).
    Near-dup kind auto compares images when the rows are images."""
    if modality == "text":
        return None
    kind = subsample.near_dup.kind
    image_near_dup = kind == "image" or kind == "auto"
    if not image_near_dup and not subsample.cluster.enabled:
        return None
    return SignalSpec.from_config(subsample)
