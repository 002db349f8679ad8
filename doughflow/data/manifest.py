"""What a data stage wrote: Parquet shards with their rows, bytes and SHA-256, and the fingerprint of
the source they came from.

Every data stage (fetch, validate, subsample, split) hands the next one a :class:`DataManifest`, and
caches key on it: the fingerprint says when the data changed, the shard hashes catch a file that was
modified or truncated after it was written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

HASH_CHUNK = 8 << 20


@dataclass
class ShardInfo:
    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class UnitEntry:
    """One fetched source unit: a rerun skips it while its key and shard hashes still match."""

    name: str
    key: str
    format: str
    files: int
    source_bytes: int
    sha256: str  # of the unit's source bytes (file names included for image runs)
    rows: int
    shards: list[str] = field(default_factory=list)
    made_ids: int = 0  # rows whose id was made as '<name>#<row>' (the file had no id column)


@dataclass
class DataManifest:
    """What a data stage wrote: shards, their sizes and hashes, and the source's fingerprint."""

    source: str
    fingerprint: str
    rows: int
    shards: list[ShardInfo] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    bytes: int = 0  # source bytes read (fetch) or 0
    files: list[UnitEntry] = field(default_factory=list)
    filled: dict[str, int] = field(default_factory=dict)  # column -> rows given its default (file lacked it)
    made_ids: int = 0  # rows whose id fetch made as '<file name>#<row>' because their file had no id column

    def save(self, path: Path) -> Path:
        """Written to a temporary name and renamed, so an interrupted write never leaves half a file."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> DataManifest:
        raw = json.loads(Path(path).read_text())
        raw["shards"] = [ShardInfo(**shard) for shard in raw["shards"]]
        raw["files"] = [UnitEntry(**entry) for entry in raw.get("files", [])]
        return cls(**raw)

    def paths(self) -> list[Path]:
        return [Path(shard.path) for shard in self.shards]


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return stream_sha256(handle)


def stream_sha256(handle: BinaryIO) -> str:
    """SHA-256 of a binary file object (local or fsspec remote), read in chunks."""
    digest = hashlib.sha256()
    while chunk := handle.read(HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def write_shards(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema | None,
    out_dir: Path,
    rows_per_shard: int,
    prefix: str = "part",
) -> list[ShardInfo]:
    """Regroup a stream of record batches into shards of ``rows_per_shard`` rows. With no schema
    the first batch's is used (CSV and JSONL readers infer it). Each batch goes to the open shard's
    ParquetWriter as it comes, so memory is one batch, not one shard (a 10k-row shard of 64 px
    PNGs is 58 MB, and fetch copies two at once)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[ShardInfo] = []
    writer: pq.ParquetWriter | None = None
    written = 0

    def close() -> None:
        nonlocal writer, written
        assert writer is not None, "close() follows a write"
        writer.close()
        path = out_dir / f"{prefix}-{len(shards):05d}.parquet"
        shards.append(ShardInfo(str(path), written, path.stat().st_size, file_sha256(path)))
        writer, written = None, 0

    for batch in batches:
        schema = schema or batch.schema
        while batch.num_rows:
            if writer is None:
                writer = pq.ParquetWriter(out_dir / f"{prefix}-{len(shards):05d}.parquet", schema)
            take = min(batch.num_rows, rows_per_shard - written)
            writer.write_table(pa.Table.from_batches([batch.slice(0, take)], schema=schema))
            written += take
            batch = batch.slice(take)
            if written == rows_per_shard:
                close()
    if writer is not None:
        close()
    return shards
