"""What a data source is made of: listing files at an fsspec URL, deciding their format, grouping
them into fetch units, and reading one unit as a stream of Arrow record batches.

A fetch unit is what a rerun fetches again or skips as a whole: one tabular file (Parquet, CSV,
JSONL), or a run of up to ``rows_per_shard`` images of one folder. Its key hashes the names, sizes
and versions (ETag, Last-Modified or mtime) of its files, so a changed file gets a new key without
reading any bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

TABULAR = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
IMAGES = (".png", ".jpg", ".jpeg")
FORMAT_NAMES = {"parquet": "Parquet", "csv": "CSV", "jsonl": "JSONL", "images": "image"}
VERSION_KEYS = ("ETag", "etag", "Last-Modified", "LastModified", "last_modified", "mtime", "md5", "generation")
LABELS_FILE = "labels.csv"
FOLDER_COLUMN = "folder"


@dataclass(frozen=True)
class SourceFile:
    path: str  # as the filesystem names it
    name: str  # relative to the source root: the same wherever the data is hosted
    size: int
    version: str


@dataclass
class FetchUnit:
    name: str
    format: str
    files: list[SourceFile] = field(default_factory=list)
    salt: str = ""  # e.g. the labels file's version: it changes every image unit's rows

    @property
    def key(self) -> str:
        digest = hashlib.sha256(f"{self.format}\0{self.salt}".encode())
        for f in self.files:
            digest.update(f"\0{f.name}\0{f.size}\0{f.version}".encode())
        return digest.hexdigest()[:16]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def _extension(name: str) -> str:
    return posixpath.splitext(name.lower())[1]


def file_format(name: str) -> str | None:
    ext = _extension(name)
    return "images" if ext in IMAGES else TABULAR.get(ext)


def _version(info: dict) -> str:
    for key in VERSION_KEYS:
        if info.get(key) not in (None, ""):
            return f"{key}={info[key]}"
    return ""


def _relative(path: str, root: str) -> str:
    root = root.rstrip("/")
    return path[len(root) :].lstrip("/") if path.startswith(root + "/") else posixpath.basename(path)


def _local_entry_problem(path: str, info: dict, root: str) -> str | None:
    """Why a local folder entry must not be read, or None. A symbolic link that resolves outside the source
    folder would copy an unrelated file (a key, /etc/passwd) into the run's shards and quarantine; a FIFO
    or device would block the fetch forever. Links within the folder are read like the files they name."""
    if info.get("islink"):
        target = os.path.realpath(path)
        inside = os.path.realpath(root)
        if os.path.commonpath([target, inside]) != inside:
            return f"is a symbolic link to {target}, outside the source folder; copy the file in instead"
        if not os.path.isfile(target):
            return f"is a symbolic link to {target}, which is not a regular file"
        return None
    if info.get("type", "file") not in ("file", "directory"):
        return "is not a regular file (a FIFO, socket or device)"
    return None


def list_files(fs: fsspec.AbstractFileSystem, root: str, url: str) -> list[SourceFile]:
    """Every file under ``root`` (or ``root`` itself) with its size and version. In a local folder, a link
    leading outside it or an entry that is not a regular file stops the fetch, naming it."""
    if not fs.exists(root):
        raise FileNotFoundError(f"data source {url} does not exist")
    if fs.isdir(root):
        found = fs.find(root, detail=True)
        infos = [(path, info) for path, info in sorted(found.items()) if info.get("type", "file") != "directory"]
        if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            problems = [
                f"{_relative(path, root)} {problem}"
                for path, info in infos
                if (problem := _local_entry_problem(path, info, root))
            ]
            if problems:
                raise ValueError(
                    f"data source {url}: refused {len(problems)} entr{'y' if len(problems) == 1 else 'ies'}: "
                    + "; ".join(problems[:10])
                )
    else:
        infos = [(root, fs.info(root))]
    return [SourceFile(path, _relative(path, root), int(info.get("size") or 0), _version(info)) for path, info in infos]


def choose_format(files: list[SourceFile], requested: str, url: str) -> tuple[str, list[SourceFile]]:
    """The files of the chosen format. ``auto``: Parquet if there is any, else images, else CSV/JSONL."""
    kinds = {f.name: file_format(f.name) for f in files}
    if requested == "auto":
        present = set(kinds.values())
        for candidate in ("parquet", "images", "tabular"):
            if candidate == "tabular" and present & {"csv", "jsonl"}:
                requested = "tabular"
                break
            if candidate in present:
                requested = candidate
                break
        else:
            raise FileNotFoundError(f"data source {url} holds no .parquet files (nor CSV, JSONL or image files)")
    wanted = {"tabular": {"csv", "jsonl"}}.get(requested, {requested})
    chosen = [f for f in files if kinds[f.name] in wanted and f.name != LABELS_FILE]
    if len(files) == 1 and requested in ("parquet", "csv", "jsonl"):
        chosen = files  # one file named by URL is read as asked, whatever its extension
    if not chosen:
        raise FileNotFoundError(f"data source {url} holds no {FORMAT_NAMES.get(requested, requested)} files")
    return requested, chosen


def plan_units(files: list[SourceFile], fmt: str, rows_per_shard: int, salt: str = "") -> list[FetchUnit]:
    """One unit per tabular file; images in runs of ``rows_per_shard`` per folder, so adding an
    image to one folder refetches only that folder's later runs."""
    if fmt != "images":
        return [FetchUnit(f.name, fmt if fmt != "tabular" else str(file_format(f.name)), [f], salt) for f in files]
    by_folder: dict[str, list[SourceFile]] = {}
    for f in files:
        by_folder.setdefault(posixpath.dirname(f.name), []).append(f)
    units = []
    for folder, members in sorted(by_folder.items()):
        members.sort(key=lambda f: f.name)
        for start in range(0, len(members), rows_per_shard):
            units.append(
                FetchUnit(
                    f"{folder or 'root'}@{start // rows_per_shard}",
                    "images",
                    members[start : start + rows_per_shard],
                    salt,
                )
            )
    return units


def row_id(name: str, row: int) -> str:
    """The id made for row ``row`` (from 0) of the source file ``name`` (relative to the source root)
    when the file has no id column: stable while the file keeps its name and its rows their order,
    unique within a source (names are), and sorted like the rows (9 digits; wider past 10^9 rows)."""
    return f"{name}#{row:09d}"


def with_row_ids(
    batches: Iterator[pa.RecordBatch], id_column: str, name: str, made: list[int]
) -> Iterator[pa.RecordBatch]:
    """``batches`` with ``id_column`` as text (every stage compares ids as text, and a CSV's 1 must fit a
    JSONL file's "1"), made by :func:`row_id` and put first when the file has none; the rows given an id
    are added to ``made[0]``."""
    row = 0
    for batch in batches:
        if id_column in batch.schema.names:
            at = batch.schema.get_field_index(id_column)
            if batch.schema.field(at).type != pa.string():
                batch = batch.set_column(at, id_column, batch.column(at).cast(pa.string()))
            yield batch
            continue
        ids = pa.array([row_id(name, r) for r in range(row, row + batch.num_rows)], pa.string())
        row += batch.num_rows
        made[0] += batch.num_rows
        yield pa.RecordBatch.from_arrays([ids, *batch.columns], names=[id_column, *batch.schema.names])


def read_tabular(
    local_path: str, fmt: str, batch_rows: int, string_columns: tuple[str, ...] = ()
) -> Iterator[pa.RecordBatch]:
    """Stream a local Parquet, CSV or JSONL file in record batches. CSV columns in ``string_columns`` (ids,
    texts) are read as text: type inference would read a postcode 01234 as the number 1234."""
    if fmt == "parquet":
        yield from pq.ParquetFile(local_path).iter_batches(batch_size=batch_rows)
    elif fmt == "csv":
        convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in string_columns})
        yield from pacsv.open_csv(
            local_path, read_options=pacsv.ReadOptions(block_size=8 << 20), convert_options=convert
        )
    elif fmt == "jsonl":
        yield from pajson.open_json(local_path, read_options=pajson.ReadOptions(block_size=8 << 20))
    else:
        raise ValueError(f"unknown tabular format {fmt!r}")


_ECHOED_ROW = re.compile(r"(CSV parse error: [^:]*?)(: .*)?$", re.S)


def read_error_detail(local_path: str, fmt: str, error: Exception) -> str:
    """Arrow's message for a file it could not read, without the row it echoes (a CSV parse error quotes
    the offending line, customer ids and all, into logs and the Prefect UI), and with the row number it
    lacks: for CSV, the first line whose field count differs from the header's (1 is the header)."""
    message = str(error)
    if fmt != "csv" or "CSV parse error" not in message:
        return message.splitlines()[0][:300] if message else type(error).__name__
    detail = _ECHOED_ROW.match(message.strip())
    text = detail.group(1) if detail else "CSV parse error"
    try:
        with open(local_path, newline="", encoding="utf-8", errors="replace") as handle:
            reader = csv.reader(handle)
            width = len(next(reader, []))
            for row in reader:
                if len(row) != width:
                    return f"row {reader.line_num}: {text} (row content not shown)"
    except (OSError, csv.Error) as scan_error:
        return f"{text} (row content not shown; locating the row failed: {type(scan_error).__name__})"
    return f"{text} (row content not shown)"


@dataclass
class ImageLabels:
    """Per-image label columns from a CSV keyed by ``path`` (relative to the image root, or the
    bare file name). Small next to the images, so it is held in memory."""

    table: pa.Table | None = None
    version: str = ""

    @classmethod
    def read(cls, data: bytes, name: str, version: str, id_column: str) -> ImageLabels:
        try:
            table = pacsv.read_csv(io.BytesIO(data))
        except pa.ArrowInvalid as error:
            raise ValueError(f"labels file {name}: not a readable CSV ({error})") from error
        key = next((c for c in ("path", id_column, "file", "filename") if c in table.column_names), None)
        if key is None:
            raise ValueError(
                f"labels file {name}: needs a column 'path' (image path relative to the source root, "
                f"or file name); columns present: {table.column_names}"
            )
        table = table.rename_columns(["path" if c == key else c for c in table.column_names])
        table = table.set_column(table.column_names.index("path"), "path", table.column("path").cast(pa.string()))
        return cls(table, version)

    def lookup(self) -> dict[str, int]:
        if self.table is None:
            return {}
        out: dict[str, int] = {}
        for row, path in enumerate(self.table.column("path").to_pylist()):
            out.setdefault(path, row)
        return out


def image_batch(
    names: list[str],
    blobs: list[bytes],
    *,
    id_column: str,
    image_column: str,
    folders: bool,
    labels: ImageLabels,
    index: dict[str, int],
) -> pa.RecordBatch:
    """One record batch of images: id (the path), bytes, the top folder (label or split), labels."""
    arrays = {id_column: pa.array(names, pa.string()), image_column: pa.array(blobs, pa.binary())}
    if folders:
        arrays[FOLDER_COLUMN] = pa.array([n.split("/", 1)[0] if "/" in n else "" for n in names], pa.string())
    if labels.table is not None:
        rows = [index.get(n, index.get(posixpath.basename(n))) for n in names]
        taken = labels.table.take(pa.array(rows, pa.int64()))
        for column in taken.column_names:
            if column != "path" and column not in arrays:
                arrays[column] = taken.column(column).combine_chunks()
    return pa.RecordBatch.from_pydict(arrays)
