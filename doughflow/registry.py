"""The run registry: one SQLite row per finished run, so runs can be found and compared later.

SQLite because it is a file (it travels with the artifacts folder), needs no server, and is
queryable with any SQL tool; JSON columns keep the schema stable while configs grow fields.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    experiment TEXT NOT NULL,
    status TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    data_fingerprint TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    bundle TEXT,
    total_seconds REAL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    gates TEXT NOT NULL,
    stage_seconds TEXT NOT NULL,
    stage_states TEXT NOT NULL DEFAULT '{}'
)
"""

# Human verdicts on a run's review packet (flows.review): one row per (run, sample, reviewer), so a
# reviewer re-importing a corrected file replaces their own verdicts and never another reviewer's.
VERDICTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    run_id TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    verdict TEXT NOT NULL,
    corrected TEXT NOT NULL,
    comment TEXT NOT NULL,
    reviewed_at TEXT NOT NULL,
    source_file TEXT NOT NULL,
    PRIMARY KEY (run_id, sample_id, reviewer)
)
"""


@dataclass
class RunRecord:
    run_id: str
    created_at: str
    experiment: str
    status: str
    config_hash: str
    data_fingerprint: str
    git_commit: str
    bundle: str | None
    total_seconds: float | None
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    gates: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)
    stage_states: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)  # world size, device, global batch, effective LR (Recipe.headline)


JSON_FIELDS = ("config", "metrics", "gates", "stage_seconds", "stage_states", "recipe")


# Columns added after the first release, with the value old rows get. A registry written by an older
# doughflow gains them on first open (ALTER TABLE ADD COLUMN keeps every row), so upgrading never
# strands the runs already recorded. Append here when RunRecord grows a field.
ADDED_COLUMNS: dict[str, str] = {"stage_states": "TEXT NOT NULL DEFAULT '{}'", "recipe": "TEXT NOT NULL DEFAULT '{}'"}
SCHEMA_VERSION = 1 + len(ADDED_COLUMNS)


def _migrate(connection: sqlite3.Connection) -> None:
    if connection.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    present = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    with connection:
        for name, declaration in ADDED_COLUMNS.items():
            if name not in present:
                connection.execute(f"ALTER TABLE runs ADD COLUMN {name} {declaration}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30)
    connection.execute(SCHEMA)
    connection.execute(VERDICTS_SCHEMA)
    _migrate(connection)
    return connection


def record_run(path: str | Path, record: RunRecord) -> None:
    """Insert or replace the run's row (a rerun of the same run id updates it)."""
    row = asdict(record)
    for name in JSON_FIELDS:
        row[name] = json.dumps(row[name], sort_keys=True, default=str)
    columns = ", ".join(row)
    marks = ", ".join(f":{name}" for name in row)
    with closing(_connect(Path(path))) as connection, connection:
        connection.execute(f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({marks})", row)


def load_runs(path: str | Path, run_ids: list[str] | None = None, last: int | None = None) -> list[RunRecord]:
    """Runs by id (in the order asked; an unknown id is an error naming it), or the newest ``last``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no run registry at {path}: run a training flow first")
    with closing(_connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        if run_ids:
            rows = {
                row["run_id"]: row
                for row in connection.execute(
                    f"SELECT * FROM runs WHERE run_id IN ({','.join('?' * len(run_ids))})", run_ids
                )
            }
            missing = [run_id for run_id in run_ids if run_id not in rows]
            if missing:
                raise KeyError(f"unknown run id(s) {missing} in {path}")
            ordered = [rows[run_id] for run_id in run_ids]
        else:
            query = "SELECT * FROM runs ORDER BY created_at DESC, run_id DESC"
            ordered = list(connection.execute(query + (f" LIMIT {int(last)}" if last else "")))[::-1]
    records = []
    for row in ordered:
        data = dict(row)
        for name in JSON_FIELDS:
            data[name] = json.loads(data[name])
        records.append(RunRecord(**data))
    return records


def previous_run(path: str | Path, experiment: str, run_id: str) -> RunRecord | None:
    """The newest run of ``experiment`` other than ``run_id``, or None (no registry yet, or no such run)."""
    path = Path(path)
    if not path.exists():
        return None
    with closing(_connect(path)) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT * FROM runs WHERE experiment = ? AND run_id != ? ORDER BY created_at DESC, run_id DESC LIMIT 1",
            (experiment, run_id),
        ).fetchone()
    if row is None:
        return None
    data = dict(row)
    for name in JSON_FIELDS:
        data[name] = json.loads(data[name])
    return RunRecord(**data)


def record_verdicts(path: str | Path, run_id: str, rows: list[dict]) -> int:
    """Store verdict rows (keys as in the verdicts table; ``corrected`` a dict) for a registered run."""
    path = Path(path)
    load_runs(path, [run_id])  # an unknown run is an error naming it, before anything is written
    with closing(_connect(path)) as connection, connection:
        connection.executemany(
            "INSERT OR REPLACE INTO verdicts (run_id, sample_id, reviewer, verdict, corrected, comment, reviewed_at,"
            " source_file) VALUES (:run_id, :sample_id, :reviewer, :verdict, :corrected, :comment, :reviewed_at,"
            " :source_file)",
            [{**row, "run_id": run_id, "corrected": json.dumps(row["corrected"], sort_keys=True)} for row in rows],
        )
    return len(rows)


def load_verdicts(path: str | Path, run_id: str) -> list[dict]:
    """Every stored verdict of a run, oldest first."""
    with closing(_connect(Path(path))) as connection:
        connection.row_factory = sqlite3.Row
        rows = [
            dict(row)
            for row in connection.execute(
                "SELECT * FROM verdicts WHERE run_id = ? ORDER BY reviewed_at, reviewer, sample_id", (run_id,)
            )
        ]
    for row in rows:
        row["corrected"] = json.loads(row["corrected"])
    return rows
