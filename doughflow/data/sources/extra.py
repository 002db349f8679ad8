"""Extra training sources (e.g. reviewed corrections) appended to the fetched main source.

Kept apart from fetch.py on purpose: the fetch stage calls one function after copying the main source.
Extra rows are written as more raw shards in the main source's schema (a column they lack is null,
a column the main source lacks is dropped), so every later stage reads them like any other shard.
What is dropped is not lost: the ids and every extra column (e.g. ``origin_*``) of each extra row,
with the URL it came from, go to ``extra_origin.parquet`` beside the shards. The data fingerprint
covers the extra sources too, so adding corrections changes it.

A row with an ``origin_sample_id`` (a reviewed correction) supersedes that row of the main source:
the main row is dropped, otherwise exact dedup (same image bytes, lowest id wins) would keep the
old label and silently discard the correction.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from doughflow.data.manifest import HASH_CHUNK, DataManifest, ShardInfo, file_sha256, write_shards

log = logging.getLogger(__name__)

ORIGIN_FILE = "extra_origin.parquet"
SUPERSEDES = "origin_sample_id"


def list_parquet_files(url: str) -> tuple[fsspec.AbstractFileSystem, list[str], str]:
    fs, root = fsspec.core.url_to_fs(url)
    if not fs.exists(root):
        raise FileNotFoundError(f"extra source {url} does not exist")
    if fs.isdir(root):
        files = sorted(path for path in fs.find(root) if path.endswith(".parquet"))
        if not files:
            raise FileNotFoundError(f"extra source {url} holds no .parquet files")
    else:
        files = [root]
    return fs, files, root


def source_fingerprint(fs: fsspec.AbstractFileSystem, files: list[str], root: str) -> str:
    """SHA-256 over each file's relative name and bytes: the same content, the same fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(files):
        relative = name[len(root) :].lstrip("/") if name.startswith(root) else name.rsplit("/", 1)[-1]
        digest.update(relative.encode() + b"\0")
        with fs.open(name, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def drop_superseded(shards: list[ShardInfo], id_column: str, superseded: pa.Array) -> list[ShardInfo]:
    """Rewrite the main shards without the superseded ids (shards without any are left untouched)."""
    kept = []
    for shard in shards:
        table = pq.read_table(shard.path)
        mask = pc.is_in(table.column(id_column).cast(pa.string()), value_set=superseded)
        if pc.any(mask).as_py():
            pq.write_table(table.filter(pc.invert(mask)), shard.path)
            shard = ShardInfo(
                shard.path,
                table.num_rows - pc.sum(mask).as_py(),
                Path(shard.path).stat().st_size,
                file_sha256(Path(shard.path)),
            )
        kept.append(shard)
    return kept


def conform(table: pa.Table, schema: pa.Schema, url: str) -> pa.Table:
    """``table`` in ``schema``'s columns and types; an uncastable column is an error naming both."""
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        try:
            columns.append(table.column(target.name).cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise ValueError(
                f"extra source {url}: column {target.name!r} cannot be read as {target.type}: {error}"
            ) from error
    return pa.Table.from_arrays(columns, schema=schema)


def append_extra_sources(
    manifest: DataManifest, urls: list[str], out_dir: Path, *, id_column: str, rows_per_shard: int
) -> DataManifest:
    """Return ``manifest`` with every extra source's rows appended as shards (unchanged without urls)."""
    if not urls:
        return manifest
    schema = pq.read_schema(manifest.shards[0].path) if manifest.shards else None
    if schema is None:
        raise ValueError(f"main source {manifest.source} has no rows: extra sources need its schema")
    digest = hashlib.sha256(manifest.fingerprint.encode())
    main_shards, origins = list(manifest.shards), []
    for number, url in enumerate(urls):
        fs, files, root = list_parquet_files(url)
        digest.update(source_fingerprint(fs, files, root).encode())
        table = ds.dataset(files, format="parquet", filesystem=fs).to_table()
        if id_column not in table.column_names:
            raise ValueError(f"extra source {url}: missing id column {id_column!r}; columns: {table.column_names}")
        extra = [name for name in table.column_names if name not in schema.names]
        origins.append(
            pa.table(
                {
                    "sample_id": table.column(id_column).cast(pa.string()),
                    "extra_source": pa.array([url] * table.num_rows, pa.string()),
                    **{name: table.column(name).cast(pa.string()) for name in extra},
                }
            )
        )
        manifest.shards += write_shards(
            conform(table, schema, url).to_batches(), schema, out_dir, rows_per_shard, prefix=f"extra{number}"
        )
        log.info("appended %d rows of extra source %s", table.num_rows, url)
    origin = pa.concat_tables(origins, promote_options="default")
    if SUPERSEDES in origin.column_names:
        superseded = pc.drop_null(origin.column(SUPERSEDES)).combine_chunks()
        manifest.shards = drop_superseded(main_shards, id_column, superseded) + manifest.shards[len(main_shards) :]
    pq.write_table(origin, out_dir / ORIGIN_FILE)
    manifest.rows = sum(shard.rows for shard in manifest.shards)
    manifest.source = " + ".join([manifest.source, *urls])
    manifest.fingerprint = digest.hexdigest()
    manifest.save(out_dir / "manifest.json")
    return manifest
