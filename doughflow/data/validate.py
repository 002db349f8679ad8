"""Validate: every row either passes to the next stage or lands in quarantine with a reason.

A missing or mistyped column is a schema problem with the whole file, so it stops the run with the
file and column named. A bad row (undecodable image, impossible count, missing id) is a data problem:
it is quarantined with its source file, row number and reason, and the run goes on. While decoding,
we hash the pixels, so exact dedup compares content rather than encodings at no extra decode. Text
rows (the text adapter) are checked by doughflow.data.textvalidate instead of being decoded. A source
without the group column has no groups (doughflow.data.columns): the rows are valid without one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from doughflow.data.adapters import AdapterSchemaError, CountColumns, DatasetAdapter, TextRecords, count_label_problem
from doughflow.data.columns import present_group_column
from doughflow.data.imagecodec import decode_image
from doughflow.data.manifest import DataManifest, ShardInfo, file_sha256
from doughflow.data.textvalidate import text_problems

log = logging.getLogger(__name__)

CONTENT_HASH = "_content_hash"
QUARANTINE_FIELDS = [pa.field("_reason", pa.string()), pa.field("_source_file", pa.string()), pa.field("_source_row", pa.int64())]


class SchemaError(ValueError):
    """A whole file is unusable: a required column is missing or has the wrong type."""


@dataclass
class ValidationResult:
    manifest: DataManifest
    quarantine_path: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    reasons: dict[str, int]
    group_column: str | None = None  # the rows' group column; None: the data has none


def check_schema(schema: pa.Schema, path: str, id_column: str, image_column: str, group_column: str | None,
                 target_columns: list[str], adapter: DatasetAdapter | None = None) -> None:
    """``target_columns`` are the source's label columns; ``adapter`` checks their types (default:
    numeric counts). Text adapters need their text columns instead of an image column."""
    text = isinstance(adapter, TextRecords)
    payload = adapter.text_columns if isinstance(adapter, TextRecords) else [image_column]
    needed = [id_column, *payload, *([group_column] if group_column else []), *target_columns]
    missing = [name for name in dict.fromkeys(needed) if name not in schema.names]
    if missing:
        raise SchemaError(f"{path}: missing column(s) {missing}; columns present: {schema.names}")
    image_type = schema.field(image_column).type if not text else pa.binary()
    if not (pa.types.is_binary(image_type) or pa.types.is_large_binary(image_type)):
        raise SchemaError(f"{path}: column {image_column!r} must hold encoded image bytes (binary), got {image_type}")
    try:
        (adapter or columns_adapter(target_columns)).check_schema_types(schema, path)
    except AdapterSchemaError as error:
        raise SchemaError(str(error)) from None


def columns_adapter(target_columns: list[str], max_count: int = 0) -> CountColumns:
    """The count adapter over these exact column names (no prefix), for callers that name columns."""
    return CountColumns(target_columns, target_prefix="", max_count=max_count)


def content_hash(pixels: np.ndarray) -> bytes:
    """128-bit hash of decoded pixels and shape: equal images hash equal whatever their encoding."""
    return xxhash.xxh3_128_digest(np.ascontiguousarray(pixels).tobytes() + repr(pixels.shape).encode())


# Ids are keys, not payloads: one over this many characters is quarantined (a megabyte id would be copied
# into every manifest, report table, review page and log line that names the row).
MAX_ID_CHARS = 512


def id_problem(value: object, what: str) -> str | None:
    """Why an id or group id cannot be used, or None. Control characters (a newline forges log lines, a
    NUL truncates strings in C readers) and ids over MAX_ID_CHARS are refused; anything else is text."""
    text = str(value)
    if len(text) > MAX_ID_CHARS:
        return f"{what} over {MAX_ID_CHARS} characters ({len(text)})"
    control = next((char for char in text if ord(char) < 32 or ord(char) == 127), None)
    if control is not None:
        return f"{what} holds control character U+{ord(control):04X}"
    return None


def row_problem(image: bytes | None, sample_id: object, group: object, counts: list, max_count: int,
                target_columns: list[str], image_column: str,
                label_problem: Callable[[list], tuple[str, str] | None] | None = None) -> tuple[str | None, str | None, bytes | None]:
    """The first thing wrong with a row as (category, detail), or (None, None, content hash).
    The category ("column: kind") is what the report counts; the detail is kept per row.
    ``counts`` are the row's label values; ``label_problem`` (a dataset adapter's) judges them,
    by default as counts of ``target_columns`` within 0..max_count."""
    if sample_id is None or str(sample_id) == "":
        return "id: missing", "missing id", None
    if group is None or str(group) == "":
        return "group: missing", "missing group id", None
    for value, what, category in ((sample_id, "id", "id: unusable"), (group, "group id", "group: unusable")):
        unusable = id_problem(value, what)
        if unusable is not None:
            return category, unusable, None
    problem = label_problem(counts) if label_problem else count_label_problem(counts, target_columns, max_count)
    if problem is not None:
        return problem[0], problem[1], None
    if image is None or len(image) == 0:
        return f"{image_column}: empty", f"{image_column}: empty image", None
    try:
        pixels = decode_image(image)
    except Exception as error:  # PIL raises many types for corrupt data
        return f"{image_column}: undecodable", f"{image_column}: undecodable image ({type(error).__name__}: {error})", None
    if min(pixels.shape[:2]) < 8:
        return f"{image_column}: too small", f"{image_column}: image too small {pixels.shape[1]}x{pixels.shape[0]}", None
    return None, None, content_hash(pixels)


def text_row_problem(sample_id: object, group: object, labels: list,
                     label_problem: Callable[[list], tuple[str, str] | None],
                     text: tuple[str, str] | None) -> tuple[str | None, str | None, None]:
    """``row_problem`` for a text row: id, group and labels as for images, then its text's problem
    (from doughflow.data.textvalidate.text_problems)."""
    if sample_id is None or str(sample_id) == "":
        return "id: missing", "missing id", None
    if group is None or str(group) == "":
        return "group: missing", "missing group id", None
    problem = label_problem(labels) or text
    return (problem[0], problem[1], None) if problem else (None, None, None)


def validate_shards(manifest: DataManifest, out_dir: Path, *, id_column: str, image_column: str,
                    group_column: str | None, target_columns: list[str], max_count: int,
                    adapter: DatasetAdapter | None = None) -> ValidationResult:
    """Split every fetched shard into valid rows (plus a content hash) and quarantined rows. With an
    ``adapter``, its source columns are the labels it judges, and the target columns it derives are
    appended to the valid rows; without, ``target_columns`` are counts within 0..max_count. Data
    without ``group_column`` (or with None) has no groups."""
    adapter = adapter or columns_adapter(target_columns, max_count)
    label_columns = adapter.source_columns
    derived = [name for name in adapter.target_columns if name not in label_columns]
    text = adapter if isinstance(adapter, TextRecords) else None
    if text and text.text_column not in text.text_columns:
        derived.append(text.text_column)
    if manifest.shards:
        names = pq.read_schema(manifest.shards[0].path).names
        try:
            group_column = present_group_column(names, group_column, manifest.shards[0].path)
        except ValueError as error:
            raise SchemaError(str(error)) from None
        if group_column is None:
            log.warning("the data has no group column: its rows will be split by near-duplicate component")
    out_dir.mkdir(parents=True, exist_ok=True)
    seen_ids: set[str] = set()
    quarantine_tables: list[pa.Table] = []
    valid_shards: list[ShardInfo] = []
    reasons: dict[str, int] = {}
    rows_in = 0
    for shard_index, shard in enumerate(manifest.shards):
        try:
            table = pq.read_table(shard.path)
        except (pa.ArrowInvalid, OSError) as error:
            raise SchemaError(f"{shard.path}: unreadable Parquet shard ({error})") from error
        check_schema(table.schema, shard.path, id_column, image_column, group_column, label_columns, adapter)
        rows_in += table.num_rows
        ids = table.column(id_column).to_pylist()
        # without groups every row passes the group check: its (checked) id stands in for the group
        groups = table.column(group_column).to_pylist() if group_column else ids
        labels = [table.column(name).to_pylist() for name in label_columns]
        original = table  # quarantine keeps the rows as they came, undecodable bytes included
        if text:
            table, problems = text_problems(table, text)
        else:
            images = table.column(image_column).to_pylist()
        keep = np.zeros(table.num_rows, dtype=bool)
        hashes: list[bytes | None] = []  # content hashes of kept image rows (text rows: None, unused)
        bad_rows: list[int] = []
        bad_reasons: list[str] = []
        for row in range(table.num_rows):
            if text:
                category, reason, digest = text_row_problem(ids[row], groups[row], [column[row] for column in labels],
                                                            text.label_problem, problems[row])
            else:
                category, reason, digest = row_problem(images[row], ids[row], groups[row],
                                                       [column[row] for column in labels], max_count, label_columns,
                                                       image_column, adapter.label_problem)
            if reason is None and str(ids[row]) in seen_ids:
                category, reason = f"{id_column}: duplicate", f"{id_column}: duplicate id {ids[row]!r}"
            if reason is None:
                keep[row] = True
                hashes.append(digest)
                seen_ids.add(str(ids[row]))
            else:
                bad_rows.append(row)
                bad_reasons.append(reason)
                assert category is not None, "a problem always comes with its category"
                reasons[category] = reasons.get(category, 0) + 1
                log.warning("quarantined %s row %d (%s=%.80r): %s", shard.path, row, id_column, ids[row], reason)
        valid = table.filter(pa.array(keep))
        for name, column in adapter.derived_columns(valid).items():
            valid = valid.append_column(name, column)
        if not text:  # text rows are hashed on their normalised text by the subsample stage
            valid = valid.append_column(CONTENT_HASH, pa.array(hashes, type=pa.binary(16)))
        path = out_dir / f"part-{shard_index:05d}.parquet"
        pq.write_table(valid, path)
        valid_shards.append(ShardInfo(str(path), valid.num_rows, path.stat().st_size, file_sha256(path)))
        if bad_rows:
            bad = original.take(pa.array(bad_rows))
            bad = bad.append_column(QUARANTINE_FIELDS[0], pa.array(bad_reasons, pa.string()))
            bad = bad.append_column(QUARANTINE_FIELDS[1], pa.array([shard.path] * len(bad_rows), pa.string()))
            bad = bad.append_column(QUARANTINE_FIELDS[2], pa.array(bad_rows, pa.int64()))
            quarantine_tables.append(bad)
    quarantine_path = out_dir / "quarantine.parquet"
    if quarantine_tables:
        pq.write_table(pa.concat_tables(quarantine_tables, promote_options="default"), quarantine_path)
    else:
        empty_schema = pa.schema(list(pq.read_schema(manifest.shards[0].path)) + QUARANTINE_FIELDS) if manifest.shards else pa.schema(QUARANTINE_FIELDS)
        pq.write_table(empty_schema.empty_table(), quarantine_path)
    rows_valid = sum(s.rows for s in valid_shards)
    out_manifest = DataManifest(source=manifest.source, fingerprint=manifest.fingerprint, rows=rows_valid,
                                shards=valid_shards, columns=manifest.columns + derived + ([] if text else [CONTENT_HASH]),
                                made_ids=manifest.made_ids)
    out_manifest.save(out_dir / "manifest.json")
    return ValidationResult(out_manifest, str(quarantine_path), rows_in, rows_valid, rows_in - rows_valid, reasons,
                            group_column)
