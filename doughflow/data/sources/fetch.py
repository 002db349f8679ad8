"""Fetch: copy a source at any fsspec URL (Parquet, CSV, JSONL or an image folder) into local
Parquet shards, streaming record batches.

Memory is bounded by one shard, whatever the source size. The manifest records every source unit
(file, or run of images) with its key, bytes, rows, content hash and shards, and a fingerprint of the
whole source, so later stages (and caches) can tell when the data changed. A rerun into the same
folder reuses every unit whose key and shards still match and fetches only the rest; transient read
errors are retried per file with exponential backoff and jitter (doughflow.data.sources.retry).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard, TypeVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from doughflow.data.manifest import HASH_CHUNK, DataManifest, ShardInfo, UnitEntry, file_sha256, write_shards
from doughflow.data.sources.listing import (
    FORMAT_NAMES,
    LABELS_FILE,
    FetchUnit,
    ImageLabels,
    SourceFile,
    choose_format,
    image_batch,
    list_files,
    plan_units,
    read_error_detail,
    read_tabular,
    with_row_ids,
)
from doughflow.data.sources.retry import with_retries
from doughflow.paths import remove_file

log = logging.getLogger(__name__)
T = TypeVar("T")

FETCH_THREADS = 2
READ_BATCH_ROWS = 2048  # rows read and written at once per thread


@dataclass(frozen=True)
class FetchOptions:
    """How to read a source: from ``data.source`` and the column names of ``data``."""

    format: str = "auto"
    retries: int = 4
    backoff_seconds: float = 0.5
    id_column: str = "sample_id"
    image_column: str = "image"
    labels: str | None = None  # image folders: labels CSV (URL, or path relative to the source)
    column_defaults: dict[str, float] = field(default_factory=dict)  # value of a column a file lacks
    string_columns: tuple[str, ...] = ()  # CSV columns read as text whatever they look like (ids, texts)
    storage_options: dict = field(default_factory=dict)


class _Source:
    """The listed source plus the retrying readers that pull bytes from it."""

    def __init__(self, url: str, rows_per_shard: int, options: FetchOptions) -> None:
        self.url, self.options = url, options
        self.rng = random.Random()
        self.fs, self.root = fsspec.core.url_to_fs(url, **options.storage_options)
        files = self.retry(lambda: list_files(self.fs, self.root, url), f"listing {url}")
        self.format, chosen = choose_format(files, options.format, url)
        self.labels = ImageLabels()
        self.folders = False
        if self.format == "images":
            self.labels = self._labels(files)
            self.folders = any("/" in f.name for f in chosen)
        # a tabular file's rows depend on the id column (made when the file has none), images' on the labels
        salt = self.labels.version if self.format == "images" else f"id_column={options.id_column}"
        self.units = plan_units(chosen, self.format, rows_per_shard, salt)

    def retry(self, action: Callable[[], T], what: str) -> T:
        return with_retries(
            action, retries=self.options.retries, backoff_seconds=self.options.backoff_seconds, what=what, rng=self.rng
        )

    def read_bytes(self, fs: fsspec.AbstractFileSystem, path: str, what: str) -> bytes:
        def once() -> bytes:
            with fs.open(path, "rb") as handle:
                return handle.read()

        return self.retry(once, what)

    def _labels(self, files: list[SourceFile]) -> ImageLabels:
        wanted = self.options.labels
        if wanted is None:
            match = [f for f in files if f.name == LABELS_FILE]
            if not match:
                return ImageLabels()
            fs, path, name = self.fs, match[0].path, match[0].name
        elif "://" in wanted or wanted.startswith("/"):
            fs, path = fsspec.core.url_to_fs(wanted, **self.options.storage_options)
            name = wanted
        else:
            fs, path, name = self.fs, f"{self.root.rstrip('/')}/{wanted}", wanted
        data = self.read_bytes(fs, path, f"labels file {name}")
        return ImageLabels.read(data, name, hashlib.sha256(data).hexdigest(), self.options.id_column)

    def is_plain_local(self) -> bool:
        return type(self.fs) is LocalFileSystem

    def stage_file(self, source: SourceFile, scratch: Path) -> tuple[str, str, bool]:
        """(local path, sha256 of the bytes, whether the local path is a temporary copy). Remote
        files are copied in chunks with retries, so the parser never sees a network error."""
        what = f"source file {source.name}"
        if self.is_plain_local():

            def hash_only() -> str:
                digest = hashlib.sha256()
                with self.fs.open(source.path, "rb") as handle:
                    while chunk := handle.read(HASH_CHUNK):
                        digest.update(chunk)
                return digest.hexdigest()

            return source.path, self.retry(hash_only, what), False
        scratch.mkdir(parents=True, exist_ok=True)
        local = scratch / f"incoming-{_safe(source.name)}-{threading.get_ident()}"  # one per thread

        def copy() -> str:
            digest = hashlib.sha256()
            with self.fs.open(source.path, "rb") as handle, open(local, "wb") as out:
                while chunk := handle.read(HASH_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()

        return str(local), self.retry(copy, what), True


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[-60:].strip("._") or "unit"


def _fetch_unit(
    source: _Source, unit: FetchUnit, out_dir: Path, rows_per_shard: int
) -> tuple[UnitEntry, list[ShardInfo]]:
    prefix = f"{_safe(unit.name)}-{unit.key[:10]}"
    label = FORMAT_NAMES.get(unit.format, unit.format)
    made_ids = [0]
    if unit.format == "images":
        digest = hashlib.sha256()
        blobs = []
        for f in unit.files:
            data = source.read_bytes(source.fs, f.path, f"image file {f.name}")
            digest.update(f.name.encode() + b"\0" + hashlib.sha256(data).digest())
            blobs.append(data)
        batch = image_batch(
            [f.name for f in unit.files],
            blobs,
            id_column=source.options.id_column,
            image_column=source.options.image_column,
            folders=source.folders,
            labels=source.labels,
            index=source.labels.lookup(),
        )
        shards = write_shards([batch], None, out_dir, rows_per_shard, prefix)
        sha = digest.hexdigest()
    else:
        (f,) = unit.files
        local, sha, temporary = source.stage_file(f, out_dir / "_scratch")
        try:
            strings = (source.options.id_column, *source.options.string_columns)
            batches = with_row_ids(
                read_tabular(local, unit.format, min(rows_per_shard, READ_BATCH_ROWS), strings),
                source.options.id_column,
                f.name,
                made_ids,
            )
            shards = write_shards(batches, None, out_dir, rows_per_shard, prefix)
        except (pa.ArrowException, OSError) as error:  # not chained: Arrow's message quotes the row's data
            raise ValueError(
                f"cannot read {label} source file {f.name} of {source.url}: "
                f"{read_error_detail(local, unit.format, error)}"
            ) from None
        finally:
            if temporary:
                Path(local).unlink(missing_ok=True)
        if made_ids[0]:
            log.info(
                "%s has no id column %r: made ids '%s#<row>' for its %d rows",
                f.name,
                source.options.id_column,
                f.name,
                made_ids[0],
            )
    return UnitEntry(
        unit.name,
        unit.key,
        unit.format,
        len(unit.files),
        unit.bytes,
        sha,
        sum(s.rows for s in shards),
        [s.path for s in shards],
        made_ids[0],
    ), shards


def _reusable(entry: UnitEntry | None, shards: dict[str, ShardInfo]) -> TypeGuard[UnitEntry]:
    """True when a previous run's entry still has every shard on disk with its recorded hash."""
    if entry is None:
        return False
    for path in entry.shards:
        info = shards.get(path)
        if (
            info is None
            or not Path(path).is_file()
            or Path(path).stat().st_size != info.bytes
            or file_sha256(Path(path)) != info.sha256
        ):
            return False
    return True


def _previous(manifest_path: Path) -> DataManifest | None:
    try:
        return DataManifest.load(manifest_path) if manifest_path.exists() else None
    except (ValueError, TypeError, KeyError) as error:
        log.warning("ignoring unreadable manifest %s (%s): fetching everything", manifest_path, error)
        return None


def _missing_column(name: str, rows: int, defaults: dict[str, float], filled: dict[str, int]) -> pa.Array:
    if name not in defaults:
        return pa.nulls(rows)
    filled[name] = filled.get(name, 0) + rows
    return pa.array([defaults[name]] * rows)


def _unify(
    shards: list[ShardInfo], source_of: dict[str, str], defaults: dict[str, float] | None = None
) -> tuple[list[ShardInfo], list[str], dict[str, int]]:
    """CSV/JSONL types are inferred per file (a column of nulls in one, strings in another): cast
    the shards that differ to one schema, or say which source file does not fit. A column a file
    lacks is null, or its value in ``defaults``; the filled rows are counted per column."""
    defaults = defaults or {}
    filled: dict[str, int] = {}
    schemas = [pq.read_schema(s.path) for s in shards]
    if not schemas:
        return shards, [], filled
    unified = schemas[0]
    for shard, schema in zip(shards[1:], schemas[1:]):
        try:
            unified = pa.unify_schemas([unified, schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise ValueError(
                f"source file {source_of.get(shard.path, shard.path)}: columns do not fit the files before it ({error})"
            ) from error
    out = []
    for shard, schema in zip(shards, schemas):
        if schema.remove_metadata() != unified.remove_metadata():
            path = Path(shard.path)
            try:
                table = pq.read_table(path)
                table = pa.table(
                    {
                        name: (
                            table.column(name)
                            if name in table.column_names
                            else _missing_column(name, table.num_rows, defaults, filled)
                        )
                        for name in unified.names
                    }
                ).cast(unified)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
                raise ValueError(f"{path.name}: columns do not fit the other files' ({error})") from error
            pq.write_table(table, path)
            shard = ShardInfo(str(path), table.num_rows, path.stat().st_size, file_sha256(path))
        out.append(shard)
    return out, unified.names, filled


def fetch_source(
    url: str, out_dir: Path, rows_per_shard: int = 2000, options: FetchOptions | None = None
) -> DataManifest:
    """Copy the source at ``url`` into Parquet shards plus ``manifest.json`` under ``out_dir``,
    fetching only the units a previous run into the same folder does not already hold."""
    options = options or FetchOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = _Source(url, rows_per_shard, options)
    manifest_path = out_dir / "manifest.json"
    previous = _previous(manifest_path)
    old_entries = {e.key: e for e in previous.files} if previous else {}
    old_shards = {s.path: s for s in previous.shards} if previous else {}
    entries: list[UnitEntry] = []
    shards: list[ShardInfo] = []
    fetched = 0

    def fetch_one(unit: FetchUnit) -> tuple[UnitEntry, list[ShardInfo], bool]:
        entry = old_entries.get(unit.key)
        if entry is not None and _reusable(entry, old_shards):
            return entry, [old_shards[p] for p in entry.shards], False
        for path in entry.shards if entry else []:  # names from the manifest on disk: only ours are deleted
            remove_file(out_dir, path)
        entry, unit_shards = _fetch_unit(source, unit, out_dir, rows_per_shard)
        return entry, unit_shards, True

    # Units are copied on FETCH_THREADS threads (reading, Parquet encoding and hashing release the
    # GIL: 1M pizzas took 34 s on one thread), and recorded in source order as they finish.
    with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
        for entry, unit_shards, was_fetched in pool.map(fetch_one, source.units):
            fetched += was_fetched
            old_shards.update({s.path: s for s in unit_shards})
            entries.append(entry)
            shards.extend(unit_shards)
            # progress survives an interruption: the next run resumes after the last finished unit
            DataManifest(
                url, "", sum(e.rows for e in entries), shards, [], sum(e.source_bytes for e in entries), entries
            ).save(manifest_path)
    keep = {s.path for s in shards}
    for stale in out_dir.glob("*.parquet"):
        if str(stale) not in keep:
            stale.unlink()
    shards, columns, filled = _unify(shards, {p: e.name for e in entries for p in e.shards}, options.column_defaults)
    for column, rows in filled.items():
        log.info(
            "%s: %d row(s) from files without the column took its default %s",
            column,
            rows,
            options.column_defaults[column],
        )
    fingerprint = hashlib.sha256(
        "".join(f"{e.name}\0{e.sha256}\n" for e in sorted(entries, key=lambda e: e.name)).encode()
    )
    if source.labels.version:
        fingerprint.update(f"labels\0{source.labels.version}".encode())
    used_defaults = {c: options.column_defaults[c] for c in sorted(options.column_defaults) if c in columns}
    if used_defaults:  # the fill values are data: another default is another dataset
        fingerprint.update(json.dumps(used_defaults).encode())
    if not fetched and previous is not None:  # every shard reused, already filled by the run before
        filled = previous.filled
    manifest = DataManifest(
        source=url,
        fingerprint=fingerprint.hexdigest(),
        rows=sum(s.rows for s in shards),
        shards=shards,
        columns=columns,
        bytes=sum(e.source_bytes for e in entries),
        files=entries,
        filled=filled,
        made_ids=sum(e.made_ids for e in entries),
    )
    manifest.save(manifest_path)
    log.info(
        "fetched %d of %d unit(s) of %s (%s; %d reused): %d rows in %d shard(s)",
        fetched,
        len(entries),
        url,
        source.format,
        len(entries) - fetched,
        manifest.rows,
        len(shards),
    )
    return manifest
