"""Validate: every row either passes to the next stage or lands in quarantine with a reason.

A missing or mistyped column is a schema problem with the whole file, so it stops the run with the
file and column named. A bad row (undecodable image, impossible count, missing id) is a data problem:
it is quarantined with its source file, row number and reason, and the run goes on; rows in = valid
+ quarantined, always. An image's header is read before it is decoded (doughflow.data.imageheader):
a format outside ``data.image_formats``, more bytes than ``data.max_image_bytes`` or more pixels
than ``data.max_image_pixels`` is a reason, and such an image is never decoded.

Each image is decoded once, here: the pixel hash (exact dedup compares content, not encodings) and
the near-dup signature, thumbnail and embedding (doughflow.data.dedup.signals) are computed in the
same pass and stored as columns. Shards are validated in parallel on Dask, one task per shard; an id
seen in an earlier shard is quarantined as a duplicate afterwards, as if shards were read in order.
Text rows (the text adapter) are checked by doughflow.data.textvalidate instead of being decoded. A
source without the group column has no groups (doughflow.data.columns): the rows are valid without one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from doughflow.data.adapters import AdapterSchemaError, CountColumns, DatasetAdapter, TextRecords, count_label_problem
from doughflow.data.columns import present_group_column
from doughflow.data.dedup.signals import (
    CONTENT_HASH,
    METADATA_KEY,
    SignalSpec,
    compute_signals,
    content_hash,
    fixed_binary,
)
from doughflow.data.imagecodec import decode_image
from doughflow.data.imageheader import ImageLimits, check_header
from doughflow.data.manifest import DataManifest, ShardInfo, file_sha256
from doughflow.data.textvalidate import text_problems

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

QUARANTINE_FIELDS = [
    pa.field("_reason", pa.string()),
    pa.field("_source_file", pa.string()),
    pa.field("_source_row", pa.int64()),
]


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


def check_schema(
    schema: pa.Schema,
    path: str,
    id_column: str,
    image_column: str,
    group_column: str | None,
    target_columns: list[str],
    adapter: DatasetAdapter | None = None,
) -> None:
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


def row_problem(
    image: bytes | None,
    sample_id: object,
    group: object,
    counts: list,
    max_count: int,
    target_columns: list[str],
    image_column: str,
    label_problem: Callable[[list], tuple[str, str] | None] | None = None,
    limits: ImageLimits | None = None,
) -> tuple[str | None, str | None, np.ndarray | None]:
    """The first thing wrong with a row as (category, detail), or (None, None, decoded pixels).
    The category ("column: kind") is what the report counts; the detail is kept per row.
    ``counts`` are the row's label values; ``label_problem`` (a dataset adapter's) judges them,
    by default as counts of ``target_columns`` within 0..max_count. The image's header is checked
    against ``limits`` before it is decoded."""
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
    verdict = check_header(image, limits or ImageLimits(), image_column)
    if verdict.category is not None:
        return verdict.category, verdict.detail, None
    try:
        pixels = decode_image(image)
    except Exception as error:  # PIL raises many types for corrupt data
        return (
            f"{image_column}: undecodable",
            f"{image_column}: undecodable image ({type(error).__name__}: {error})",
            None,
        )
    declared = verdict.header.height, verdict.header.width
    if pixels.shape[:2] != declared:
        return (
            f"{image_column}: undecodable",
            f"{image_column}: decoded {pixels.shape[1]}x{pixels.shape[0]} but the "
            f"header says {declared[1]}x{declared[0]}",
            None,
        )
    return None, None, pixels


@dataclass(frozen=True)
class ShardChecks:
    """Everything one shard's validation needs, as plain values that pickle to a Dask worker."""

    id_column: str
    image_column: str
    group_column: str | None  # None: the data has no groups
    adapter: DatasetAdapter
    limits: ImageLimits = field(default_factory=ImageLimits)
    signals: SignalSpec | None = None  # None: the pixel hash only
    batch_rows: int = 1024  # rows read, decoded and written at once: 1024 x (6 KB + 12 KB) for 64 px pizzas


@dataclass
class ShardOutcome:
    """What one shard's validation wrote, and the ids of its valid rows (as 64-bit keys with their
    source rows) for the duplicate check across shards."""

    rows_in: int
    shard: ShardInfo
    quarantine_path: str | None
    reasons: dict[str, int]
    keys: np.ndarray
    source_rows: np.ndarray


def _quarantine_table(table: pa.Table, rows: list[int], reasons: list[str], path: str) -> pa.Table:
    bad = table.take(pa.array(rows, pa.int64()))
    bad = bad.append_column(QUARANTINE_FIELDS[0], pa.array(reasons, pa.string()))
    bad = bad.append_column(QUARANTINE_FIELDS[1], pa.array([path] * len(rows), pa.string()))
    return bad.append_column(QUARANTINE_FIELDS[2], pa.array(rows, pa.int64()))


def _check_batch(
    batch: pa.RecordBatch, first_row: int, path: str, checks: ShardChecks, seen: set[str], label_columns: list[str]
) -> tuple[pa.Table, np.ndarray, list[tuple[int, str, str]], list[np.ndarray]]:
    """(the batch as checked: text columns as strings, keep mask, quarantined (row, category, detail),
    decoded pixels of kept rows) of one batch."""
    table = pa.Table.from_batches([batch])
    ids = batch.column(checks.id_column).to_pylist()
    # without groups every row passes the group check: its (checked) id stands in for the group
    groups = batch.column(checks.group_column).to_pylist() if checks.group_column else ids
    labels = [batch.column(name).to_pylist() for name in label_columns]
    text = checks.adapter if isinstance(checks.adapter, TextRecords) else None
    images: list = []
    if text:
        table, problems = text_problems(table, text)
    else:
        images = batch.column(checks.image_column).to_pylist()
    keep = np.zeros(batch.num_rows, dtype=bool)
    bad: list[tuple[int, str, str]] = []
    pixels: list[np.ndarray] = []
    for row in range(batch.num_rows):
        category: str | None
        reason: str | None
        decoded: np.ndarray | None
        if text:
            category, reason, decoded = text_row_problem(
                ids[row], groups[row], [column[row] for column in labels], text.label_problem, problems[row]
            )
        else:
            category, reason, decoded = row_problem(
                images[row],
                ids[row],
                groups[row],
                [column[row] for column in labels],
                0,
                label_columns,
                checks.image_column,
                checks.adapter.label_problem,
                checks.limits,
            )
            images[row] = None  # the bytes are in the batch; drop the Python copy as we go
        if reason is None and str(ids[row]) in seen:
            category, reason = f"{checks.id_column}: duplicate", f"{checks.id_column}: duplicate id {ids[row]!r}"
        if reason is None:
            keep[row] = True
            seen.add(str(ids[row]))
            if decoded is not None:
                pixels.append(decoded)
        else:
            bad.append((first_row + row, str(category), reason))
            log.warning(
                "quarantined %s row %d (%s=%.80r): %s", path, first_row + row, checks.id_column, ids[row], reason
            )
    return table, keep, bad, pixels


def validate_shard(path: str, out_path: str, quarantine_path: str, checks: ShardChecks) -> ShardOutcome:
    """Validate one shard: valid rows with their pixel hash and signal columns to ``out_path``,
    quarantined rows (whole, with reason, source file and row) to ``quarantine_path`` when there
    are any. Duplicate ids within the shard are caught here; across shards by ``validate_shards``.
    Streams ``checks.batch_rows`` rows at a time, so a worker holds one batch of images, decoded
    and encoded, whatever the shard size (a whole 10k-row shard at once held 300 MB more)."""
    adapter = checks.adapter
    label_columns = adapter.source_columns
    text = isinstance(adapter, TextRecords)
    try:
        source = pq.ParquetFile(path)
        schema = source.schema_arrow
    except (pa.ArrowInvalid, OSError) as error:
        raise SchemaError(f"{path}: unreadable Parquet shard ({error})") from error
    check_schema(schema, path, checks.id_column, checks.image_column, checks.group_column, label_columns, adapter)
    seen: set[str] = set()
    reasons: dict[str, int] = {}
    quarantined: list[pa.Table] = []
    keys: list[np.ndarray] = []
    kept_rows: list[np.ndarray] = []
    writer: pq.ParquetWriter | None = None
    rows_in = 0
    try:
        for batch in source.iter_batches(batch_size=checks.batch_rows):
            checked, keep, bad, pixels = _check_batch(batch, rows_in, path, checks, seen, label_columns)
            table = pa.Table.from_batches([batch])  # quarantine keeps the rows as they came
            valid = checked.filter(pa.array(keep))
            for name, column in adapter.derived_columns(valid).items():
                valid = valid.append_column(name, column)
            if not text:  # text rows are hashed on their normalised text by the subsample stage
                valid = valid.append_column(
                    CONTENT_HASH, pa.array([content_hash(p) for p in pixels], type=pa.binary(16))
                )
            if checks.signals is not None and not text:
                for name, matrix in compute_signals(pixels, checks.signals).items():
                    valid = valid.append_column(name, fixed_binary(matrix))
                valid = valid.replace_schema_metadata(
                    {**(valid.schema.metadata or {}), METADATA_KEY: checks.signals.metadata()}
                )
            if writer is None:
                writer = pq.ParquetWriter(out_path, valid.schema)
            writer.write_table(valid)
            if bad:
                rows = [row - rows_in for row, _, _ in bad]
                quarantined.append(
                    _quarantine_table(table, rows, [detail for _, _, detail in bad], path).set_column(
                        len(table.schema) + 2, QUARANTINE_FIELDS[2], pa.array([row for row, _, _ in bad], pa.int64())
                    )
                )
                for _, category, _ in bad:
                    reasons[category] = reasons.get(category, 0) + 1
            keys.append(_duplicate_keys(pc.cast(valid.column(checks.id_column), pa.string()).to_pylist()))
            kept_rows.append(rows_in + np.flatnonzero(keep))
            rows_in += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # an empty shard: its schema, no rows
        empty = _empty_valid(schema, adapter, checks.signals)
        pq.write_table(empty, out_path)
    shard = ShardInfo(
        str(out_path), int(sum(len(k) for k in keys)), Path(out_path).stat().st_size, file_sha256(Path(out_path))
    )
    quarantine = None
    if quarantined:
        pq.write_table(pa.concat_tables(quarantined), quarantine_path)
        quarantine = quarantine_path
    return ShardOutcome(
        rows_in,
        shard,
        quarantine,
        reasons,
        np.concatenate(keys) if keys else np.zeros(0, np.int64),
        np.concatenate(kept_rows).astype(np.int64) if kept_rows else np.zeros(0, np.int64),
    )


def _duplicate_keys(ids: list[str]) -> np.ndarray:
    """64-bit hashes of ids, only to find ids that may repeat across shards (the ids themselves
    decide). xxhash in a Python loop, 0.3 us an id: the compiled id_keys of the subsample stage
    costs a fresh Dask worker 3-5 s to load, more than hashing a million ids this way."""
    return np.fromiter((xxhash.xxh3_64_intdigest(i.encode()) for i in ids), np.uint64, len(ids)).view(np.int64)


def _empty_valid(schema: pa.Schema, adapter: DatasetAdapter, signals: SignalSpec | None) -> pa.Table:
    valid = schema.empty_table()
    if isinstance(adapter, TextRecords):
        valid, _ = text_problems(valid, adapter)
    for name, column in adapter.derived_columns(valid).items():
        valid = valid.append_column(name, column)
    if isinstance(adapter, TextRecords):
        return valid
    valid = valid.append_column(CONTENT_HASH, pa.array([], pa.binary(16)))
    if signals is not None:
        for name, matrix in compute_signals([], signals).items():
            valid = valid.append_column(name, fixed_binary(matrix))
        valid = valid.replace_schema_metadata({**(valid.schema.metadata or {}), METADATA_KEY: signals.metadata()})
    return valid


def _cross_shard_duplicates(outcomes: list[ShardOutcome], id_column: str) -> dict[int, list[int]]:
    """Shard index -> positions (in its valid shard) of rows whose id a valid row of an earlier
    shard already has. Keys find the candidates; the ids themselves decide (a 64-bit key may collide)."""
    if len(outcomes) < 2:
        return {}
    keys = np.concatenate([o.keys for o in outcomes])
    shard_of = np.concatenate([np.full(len(o.keys), i, np.int64) for i, o in enumerate(outcomes)])
    position = np.concatenate([np.arange(len(o.keys), dtype=np.int64) for o in outcomes])
    order = np.argsort(keys, kind="stable")  # stable: within one key, shard order
    sorted_keys = keys[order]
    repeated = np.r_[False, sorted_keys[1:] == sorted_keys[:-1]] | np.r_[sorted_keys[:-1] == sorted_keys[1:], False]
    suspects = order[repeated]
    if len(suspects) == 0:
        return {}
    ids: dict[tuple[int, int], str] = {}
    for shard in np.unique(shard_of[suspects]):
        column = pq.read_table(outcomes[shard].shard.path, columns=[id_column]).column(id_column)
        strings = pc.cast(column, pa.string()).to_pylist()
        for p in position[suspects][shard_of[suspects] == shard]:
            ids[(int(shard), int(p))] = strings[p]
    first_shard: dict[str, int] = {}
    for s, p in sorted(ids):
        first_shard.setdefault(ids[(s, p)], s)
    later: dict[int, list[int]] = {}
    for (s, p), value in sorted(ids.items()):
        if first_shard[value] < s:
            later.setdefault(s, []).append(p)
    return later


def _drop_duplicates(
    outcome: ShardOutcome,
    positions: list[int],
    source_columns: list[str],
    checks: ShardChecks,
    source_path: str,
    quarantine_path: str,
) -> ShardOutcome:
    """Move rows at ``positions`` of a valid shard to quarantine as duplicate ids."""
    valid = pq.read_table(outcome.shard.path)
    drop = np.zeros(valid.num_rows, dtype=bool)
    drop[positions] = True
    moved = valid.filter(pa.array(drop)).select(source_columns)
    rows = outcome.source_rows[drop].tolist()
    reasons = [f"{checks.id_column}: duplicate id {value!r}" for value in moved.column(checks.id_column).to_pylist()]
    for row, reason in zip(rows, reasons):
        log.warning("quarantined %s row %d: %s", source_path, row, reason)
    quarantine = _quarantine_table(moved, list(range(len(rows))), reasons, source_path)
    quarantine = quarantine.set_column(
        quarantine.schema.get_field_index(QUARANTINE_FIELDS[2].name), QUARANTINE_FIELDS[2], pa.array(rows, pa.int64())
    )
    if outcome.quarantine_path:
        quarantine = pa.concat_tables([pq.read_table(outcome.quarantine_path), quarantine], promote_options="default")
    pq.write_table(quarantine, quarantine_path)
    kept = valid.filter(pa.array(~drop))
    pq.write_table(kept, outcome.shard.path)
    path = Path(outcome.shard.path)
    category = f"{checks.id_column}: duplicate"
    reasons_count = {**outcome.reasons, category: outcome.reasons.get(category, 0) + len(rows)}
    return ShardOutcome(
        outcome.rows_in,
        ShardInfo(str(path), kept.num_rows, path.stat().st_size, file_sha256(path)),
        quarantine_path,
        reasons_count,
        outcome.keys[~drop],
        outcome.source_rows[~drop],
    )


def text_row_problem(
    sample_id: object,
    group: object,
    labels: list,
    label_problem: Callable[[list], tuple[str, str] | None],
    text: tuple[str, str] | None,
) -> tuple[str | None, str | None, None]:
    """``row_problem`` for a text row: id, group and labels as for images, then its text's problem
    (from doughflow.data.textvalidate.text_problems)."""
    if sample_id is None or str(sample_id) == "":
        return "id: missing", "missing id", None
    if group is None or str(group) == "":
        return "group: missing", "missing group id", None
    problem = label_problem(labels) or text
    return (problem[0], problem[1], None) if problem else (None, None, None)


def validate_shards(
    manifest: DataManifest,
    out_dir: Path,
    *,
    id_column: str,
    image_column: str,
    group_column: str | None,
    target_columns: list[str],
    max_count: int,
    adapter: DatasetAdapter | None = None,
    limits: ImageLimits | None = None,
    signals: SignalSpec | None = None,
    client: Client | None = None,
) -> ValidationResult:
    """Split every fetched shard into valid rows (plus pixel hash and, with ``signals``, the
    near-dup and cluster signals) and quarantined rows. With an ``adapter``, its source columns
    are the labels it judges, and the target columns it derives are appended to the valid rows;
    without, ``target_columns`` are counts within 0..max_count. With a Dask ``client`` the shards
    are validated in parallel on its workers; without, one after another in this process. Data
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
    if text:
        signals = None  # text rows are hashed on their normalised text by the subsample stage
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / "_quarantine"
    scratch.mkdir(exist_ok=True)
    checks = ShardChecks(id_column, image_column, group_column, adapter, limits or ImageLimits(), signals)
    paths = [shard.path for shard in manifest.shards]
    outs = [str(out_dir / f"part-{i:05d}.parquet") for i in range(len(paths))]
    quarantines = [str(scratch / f"part-{i:05d}.parquet") for i in range(len(paths))]
    if client is not None:
        outcomes = client.gather(client.map(validate_shard, paths, outs, quarantines, checks=checks, pure=False))
    else:
        outcomes = [validate_shard(p, o, q, checks) for p, o, q in zip(paths, outs, quarantines)]
    source_columns = list(pq.read_schema(paths[0]).names) if paths else []
    for index, positions in _cross_shard_duplicates(outcomes, id_column).items():
        outcomes[index] = _drop_duplicates(
            outcomes[index], positions, source_columns, checks, paths[index], quarantines[index]
        )
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        for category, count in outcome.reasons.items():
            reasons[category] = reasons.get(category, 0) + count
    quarantine_path = out_dir / "quarantine.parquet"
    tables = [pq.read_table(o.quarantine_path) for o in outcomes if o.quarantine_path]
    if tables:
        pq.write_table(pa.concat_tables(tables, promote_options="default"), quarantine_path)
    else:
        empty_schema = (
            pa.schema(list(pq.read_schema(paths[0])) + QUARANTINE_FIELDS) if paths else pa.schema(QUARANTINE_FIELDS)
        )
        pq.write_table(empty_schema.empty_table(), quarantine_path)
    for path in quarantines:
        Path(path).unlink(missing_ok=True)
    valid_shards = [o.shard for o in outcomes]
    rows_in = sum(o.rows_in for o in outcomes)
    rows_valid = sum(s.rows for s in valid_shards)
    signal_names = (
        [
            name
            for name in pq.read_schema(outs[0]).names
            if name.startswith("_") and name != CONTENT_HASH and name not in derived
        ]
        if outs and signals
        else []
    )
    out_manifest = DataManifest(
        source=manifest.source,
        fingerprint=manifest.fingerprint,
        rows=rows_valid,
        shards=valid_shards,
        columns=manifest.columns + derived + ([] if text else [CONTENT_HASH]) + signal_names,
        made_ids=manifest.made_ids,
    )
    out_manifest.save(out_dir / "manifest.json")
    return ValidationResult(
        out_manifest, str(quarantine_path), rows_in, rows_valid, rows_in - rows_valid, reasons, group_column
    )
