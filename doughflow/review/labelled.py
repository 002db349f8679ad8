"""Corrected counts as training data: reviewed packet samples as Parquet, in the source's columns.

The output has the training source's columns (id, image bytes, group, count_<label>...) so the next run
reads it as ``data.extra_sources`` with no mapping, plus ``origin_*`` columns saying which run,
sample, reviewer and verdict each label came from. Labels: the model's rounded prediction where the
reviewer judged it correct, with the reviewer's corrections applied where wrong. A 'wrong' verdict with
no corrected count gives no label and is left out. Ids are prefixed ``review-`` so they never collide
with the source's own ids; the source's image bytes are kept unchanged.

Group ids: the packet's ``samples.parquet`` holds pseudonyms (it leaves the data folder with the packet),
but a labelled row must carry its real customer id, or the next run's split (by customer) could put a
corrected test image in train beside its customer's other orders. The review stage keeps the real ids
inside the run's data folder (``data/review/groups.parquet``) and the export takes them from there; the
export is training data like the source, to be kept where the source is. Without that file (a packet
copied away from its run) a pseudonymised packet is refused rather than exported under pseudonyms.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from doughflow.privacy import is_pseudonym
from doughflow.review.packet import SAMPLES

# Real group ids of the packet's samples, inside the run's data folder (never shipped with the packet).
GROUPS = Path("data") / "review" / "groups.parquet"

ORIGIN_COLUMNS = (
    "origin_run_id",
    "origin_sample_id",
    "origin_reviewer",
    "origin_verdict",
    "origin_reviewed_at",
    "origin_comment",
)


def labelled_rows(packet: dict, verdicts: list[dict]) -> dict[str, tuple[dict[str, int], dict]]:
    """sample id -> (counts, the verdict used); the newest verdict of a sample wins."""
    predicted = {row["sample_id"]: row["predicted_rounded"] for row in packet["rows"]}
    chosen: dict[str, tuple[dict[str, int], dict]] = {}
    for verdict in sorted(verdicts, key=lambda v: (v["reviewed_at"], v["reviewer"])):
        if verdict["verdict"] == "wrong" and not verdict["corrected"]:
            chosen.pop(verdict["sample_id"], None)
            continue
        counts = {**predicted[verdict["sample_id"]], **verdict["corrected"]}
        chosen[verdict["sample_id"]] = (counts, verdict)
    return chosen


def write_real_groups(run_dir: Path, ids: pa.Array, groups: pa.Array) -> Path:
    """Keep the real group id of each packet sample where the run's data is (see the module docstring)."""
    path = Path(run_dir) / GROUPS
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"sample_id": ids.cast(pa.string()), "group": groups.cast(pa.string())}), path)
    return path


def read_real_groups(run_dir: Path) -> dict[str, str] | None:
    path = Path(run_dir) / GROUPS
    if not path.exists():
        return None
    table = pq.read_table(path)
    return dict(zip(table.column("sample_id").to_pylist(), table.column("group").to_pylist()))


def export_labelled(
    review_dir: Path,
    packet: dict,
    verdicts: list[dict],
    out_path: Path,
    *,
    id_column: str,
    image_column: str,
    group_column: str | None,
    target_prefix: str,
) -> int:
    """Write the Parquet file; returns its row count. ``group_column`` None (or absent from the reviewed
    rows): the data has no groups, and neither does the file."""
    chosen = labelled_rows(packet, verdicts)
    originals = pq.read_table(Path(review_dir) / SAMPLES).to_pylist()
    by_id = {str(row[id_column]): row for row in originals}
    if group_column and originals and group_column not in originals[0]:
        group_column = None
    groups = [group_column] if group_column else []
    real_groups = read_real_groups(Path(review_dir).parent) if group_column else None
    columns: dict[str, list] = {
        id_column: [],
        image_column: [],
        **{name: [] for name in groups},
        **{f"{target_prefix}{label}": [] for label in packet["labels"]},
        **{name: [] for name in ORIGIN_COLUMNS},
    }
    for sample_id, (counts, verdict) in sorted(chosen.items()):
        source = by_id[sample_id]
        columns[id_column].append(f"review-{sample_id}")
        columns[image_column].append(source[image_column])
        if group_column:
            group = real_groups.get(sample_id) if real_groups is not None else str(source[group_column])
            if group is None or is_pseudonym(group):
                raise ValueError(
                    f"{Path(review_dir) / SAMPLES}: sample {sample_id!r} has no real group id "
                    f"({Path(review_dir).parent / GROUPS} is missing or lacks it); exported under a "
                    f"pseudonym it could land in another split than its customer's rows, so nothing "
                    f"was written"
                )
            columns[group_column].append(group)
        for label in packet["labels"]:
            columns[f"{target_prefix}{label}"].append(int(counts[label]))
        origin = [
            packet["run_id"],
            sample_id,
            verdict["reviewer"],
            verdict["verdict"],
            verdict["reviewed_at"],
            verdict["comment"],
        ]
        for name, value in zip(ORIGIN_COLUMNS, origin):
            columns[name].append(value)
    schema = pa.schema(
        [
            pa.field(id_column, pa.string()),
            pa.field(image_column, pa.binary()),
            *[pa.field(name, pa.string()) for name in groups],
            *[pa.field(f"{target_prefix}{label}", pa.int16()) for label in packet["labels"]],
            *[pa.field(name, pa.string()) for name in ORIGIN_COLUMNS],
        ]
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), out_path)
    return len(columns[id_column])
