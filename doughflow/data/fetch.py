"""Fetch: copy a Parquet source at any fsspec URL into local shards, streaming record batches.

Memory is bounded by one shard, whatever the source size. The manifest records every shard and a
content fingerprint of the source, so later stages (and caches) can tell when the data changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

HASH_CHUNK = 8 << 20


@dataclass
class ShardInfo:
    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class DataManifest:
    """What a data stage wrote: shards, their sizes and hashes, and the source's fingerprint."""

    source: str
    fingerprint: str
    rows: int
    shards: list[ShardInfo] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "DataManifest":
        raw = json.loads(Path(path).read_text())
        raw["shards"] = [ShardInfo(**shard) for shard in raw["shards"]]
        return cls(**raw)

    def paths(self) -> list[Path]:
        return [Path(shard.path) for shard in self.shards]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(fs: fsspec.AbstractFileSystem, files: list[str], root: str) -> str:
    """SHA-256 over each source file's relative name and bytes, in sorted order: the same content
    gives the same fingerprint wherever it is hosted."""
    digest = hashlib.sha256()
    for name in sorted(files):
        relative = name[len(root):].lstrip("/") if name.startswith(root) else name.rsplit("/", 1)[-1]
        digest.update(relative.encode() + b"\0")
        with fs.open(name, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def list_parquet_files(url: str) -> tuple[fsspec.AbstractFileSystem, list[str], str]:
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        raise FileNotFoundError(f"data source {url} does not exist")
    if fs.isdir(root):
        files = sorted(path for path in fs.find(root) if path.endswith(".parquet"))
        if not files:
            raise FileNotFoundError(f"data source {url} holds no .parquet files")
    else:
        files = [root]
    return fs, files, root


def write_shards(batches, schema: pa.Schema, out_dir: Path, rows_per_shard: int, prefix: str = "part") -> list[ShardInfo]:
    """Regroup a stream of record batches into shards of ``rows_per_shard`` rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[ShardInfo] = []
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> None:
        nonlocal pending_rows
        path = out_dir / f"{prefix}-{len(shards):05d}.parquet"
        table = pa.Table.from_batches(pending, schema=schema)
        pq.write_table(table.slice(0, rows_per_shard), path)
        shards.append(ShardInfo(str(path), min(table.num_rows, rows_per_shard), path.stat().st_size, file_sha256(path)))
        rest = table.slice(rows_per_shard)
        pending.clear()
        pending.extend(rest.to_batches())
        pending_rows = rest.num_rows

    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= rows_per_shard:
            flush()
    if pending_rows:
        flush()
    return shards


def fetch_source(url: str, out_dir: Path, rows_per_shard: int = 2000) -> DataManifest:
    """Read a Parquet source out-of-core and write local shards plus ``manifest.json``."""
    fs, files, root = list_parquet_files(url)
    fingerprint = source_fingerprint(fs, files, root)
    try:
        dataset = ds.dataset(files, format="parquet", filesystem=fs)
        schema = dataset.schema
        shards = write_shards(dataset.to_batches(batch_size=rows_per_shard), schema, out_dir, rows_per_shard)
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"cannot read Parquet source {url}: {error}") from error
    manifest = DataManifest(source=url, fingerprint=fingerprint, rows=sum(s.rows for s in shards),
                            shards=shards, columns=schema.names)
    manifest.save(out_dir / "manifest.json")
    log.info("fetched %d rows from %d file(s) of %s into %d shard(s)", manifest.rows, len(files), url, len(shards))
    return manifest
