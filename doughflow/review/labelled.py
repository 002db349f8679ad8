"""Corrected counts as training data: reviewed packet samples as Parquet, in the source's columns.

The output has the training source's columns (id, image bytes, group, count_<label>...) so the next run
reads it as ``data.extra_sources`` with no mapping, plus ``origin_*`` columns saying which run,
sample, reviewer and verdict each label came from. Labels: the model's rounded prediction where the
reviewer judged it correct, with the reviewer's corrections applied where wrong. A 'wrong' verdict with
no corrected count gives no label and is left out. Ids are prefixed ``review-`` so they never collide
with the source's own ids; the source's image bytes are kept unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from doughflow.review.packet import SAMPLES

ORIGIN_COLUMNS = ("origin_run_id", "origin_sample_id", "origin_reviewer", "origin_verdict", "origin_reviewed_at",
                  "origin_comment")


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


def export_labelled(review_dir: Path, packet: dict, verdicts: list[dict], out_path: Path, *, id_column: str,
                    image_column: str, group_column: str | None, target_prefix: str) -> int:
    """Write the Parquet file; returns its row count. ``group_column`` None (or absent from the reviewed
    rows): the data has no groups, and neither does the file."""
    chosen = labelled_rows(packet, verdicts)
    originals = pq.read_table(Path(review_dir) / SAMPLES).to_pylist()
    by_id = {str(row[id_column]): row for row in originals}
    if group_column and originals and group_column not in originals[0]:
        group_column = None
    groups = [group_column] if group_column else []
    columns: dict[str, list] = {id_column: [], image_column: [], **{name: [] for name in groups},
                                **{f"{target_prefix}{label}": [] for label in packet["labels"]},
                                **{name: [] for name in ORIGIN_COLUMNS}}
    for sample_id, (counts, verdict) in sorted(chosen.items()):
        source = by_id[sample_id]
        columns[id_column].append(f"review-{sample_id}")
        columns[image_column].append(source[image_column])
        for name in groups:
            columns[name].append(str(source[name]))
        for label in packet["labels"]:
            columns[f"{target_prefix}{label}"].append(int(counts[label]))
        origin = [packet["run_id"], sample_id, verdict["reviewer"], verdict["verdict"], verdict["reviewed_at"],
                  verdict["comment"]]
        for name, value in zip(ORIGIN_COLUMNS, origin):
            columns[name].append(value)
    schema = pa.schema([pa.field(id_column, pa.string()), pa.field(image_column, pa.binary()),
                        *[pa.field(name, pa.string()) for name in groups],
                        *[pa.field(f"{target_prefix}{label}", pa.int16()) for label in packet["labels"]],
                        *[pa.field(name, pa.string()) for name in ORIGIN_COLUMNS]])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), out_path)
    return len(columns[id_column])
