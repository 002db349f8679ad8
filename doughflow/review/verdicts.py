"""Read a reviewer's verdict CSV against its packet, and measure agreement.

Every problem names the file, the row (as a spreadsheet shows it: the header is row 1) and the field,
because the file was filled in by hand and the person fixing it needs to find the cell.
A row with an empty verdict was not reviewed and is skipped; predicted_* columns are ignored (the
packet holds what the model predicted, so an edited prediction cannot change the judgement).
Cells are read back through :func:`doughflow.review.csv_cells.restore`, which undoes the apostrophe the
template and the page put before formula-like values. Whatever else the file holds (bytes that are not
UTF-8, a NUL or other control character, a field over the csv module's limit, inf or nan for a count, a
file over 64 MiB) is a named problem, never an exception from the csv module or a cast.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from doughflow.review.csv_cells import restore
from doughflow.review.packet import VERDICTS

# Problems listed in full; a file with more is summarised (a wrong file can hold millions of rows).
MAX_LISTED = 50
# A verdict file has one short row per packet sample (at most 5,000): a few MB at the very most.
MAX_BYTES = 64 << 20
# NUL and the other C0 controls but tab, newline and carriage return: they have no place in a hand-filled
# sheet, and a NUL cuts strings short in C readers of the registry and of the labelled export.
CONTROL_CHARACTERS = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r") | {"\x7f"}


class VerdictError(ValueError):
    """The verdict file is unusable; ``problems`` lists every bad row, not only the first."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        listed = problems[:MAX_LISTED] + (
            [f"... and {len(problems) - MAX_LISTED} more"] if len(problems) > MAX_LISTED else []
        )
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in listed))


@dataclass
class Verdict:
    sample_id: str
    verdict: str  # correct | wrong
    corrected: dict[str, int] = field(default_factory=dict)  # only toppings the reviewer corrected
    comment: str = ""
    reviewer: str = ""

    def topping_correct(self, label: str, predicted: int) -> bool | None:
        """Was this topping's count right? None: a 'wrong' verdict with no correction says nothing per topping."""
        if self.verdict == "correct":
            return True
        if not self.corrected:
            return None
        return self.corrected.get(label, predicted) == predicted


def _parse_count(text: str, max_count: int) -> int:
    """A whole number 0..max_count ("3" or "3.0"); ValueError with the reason otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"impossible count {text!r} (a whole number from 0 to {max_count})") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number (a whole number from 0 to {max_count})")
    if value != int(value) or value < 0 or value > max_count:
        raise ValueError(f"impossible count {text!r} (a whole number from 0 to {max_count})")
    return int(value)


def _shown(text: str, limit: int = 80) -> str:
    """A cell as an error message shows it: as is when short and printable, else quoted with escapes, so a
    hostile cell cannot forge more lines of the message or flood the terminal."""
    return (
        text if text.isprintable() and len(text) <= limit else repr(text[:limit]) + ("..." if len(text) > limit else "")
    )


def _cell(row: dict, column: str) -> str:
    value = row.get(column)
    return restore(value.strip()) if isinstance(value, str) else ""


def read_verdicts(path: Path, packet: dict, reviewer: str) -> list[Verdict]:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise VerdictError(path, [f"cannot open: {error}"]) from error
    if len(data) > MAX_BYTES:
        raise VerdictError(path, [f"over {MAX_BYTES >> 20} MiB: not a verdict file (one row per packet sample)"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise VerdictError(
            path,
            [
                f"row {line}: not UTF-8 text (byte {data[error.start : error.start + 1]!r} at "
                f"character {column}); save the file as CSV UTF-8"
            ],
        ) from None
    problems: list[str] = []
    rows_read: list[int] = []
    verdicts: list[Verdict] = []
    try:
        verdicts = _read_rows(csv.DictReader(io.StringIO(text, newline="")), packet, reviewer, problems, rows_read)
    except csv.Error as error:
        problems.append(f"row {rows_read[-1] + 1 if rows_read else 1}: unreadable CSV ({error})")
    if problems:
        raise VerdictError(path, problems)
    return verdicts


def _read_rows(
    reader: csv.DictReader, packet: dict, reviewer: str, problems: list[str], rows_read: list[int]
) -> list[Verdict]:
    """Check every row, appending to ``problems``; ``rows_read`` gets the number of each row parsed (the
    header is 1), so a csv.Error raised by the reader can name the row it stopped at."""
    labels, max_count = packet["labels"], packet["max_count"]
    rows = {row["sample_id"]: row for row in packet["rows"]}
    required = ["sample_id", "verdict"]
    fieldnames = [restore(name.strip()) for name in (reader.fieldnames or [])]
    reader.fieldnames = fieldnames
    rows_read.append(1)
    missing = [c for c in required if c not in fieldnames]
    if missing:
        problems.append(f"header (row 1): missing column(s) {missing}; found {fieldnames[:20]}")
        return []
    seen: dict[str, int] = {}
    verdicts: list[Verdict] = []
    for number, row in enumerate(reader, start=2):
        rows_read.append(number)
        where = f"row {number}"
        sample_id = _cell(row, "sample_id")
        if not sample_id:
            problems.append(f"{where}: empty sample_id")
            continue
        where += f" (sample_id {_shown(sample_id)})"
        if sample_id not in rows:
            problems.append(f"{where}: unknown sample_id, not in this run's review packet")
            continue
        if sample_id in seen:
            problems.append(f"{where}: duplicate of row {seen[sample_id]}")
            continue
        seen[sample_id] = number
        control = [
            (column, char)
            for column, value in row.items()
            if isinstance(column, str) and isinstance(value, str)
            for char in value
            if char in CONTROL_CHARACTERS
        ][:1]
        if control:
            problems.append(f"{where}, {control[0][0]}: control character U+{ord(control[0][1]):04X} in the cell")
            continue
        verdict = _cell(row, "verdict").lower()
        corrected: dict[str, int] = {}
        for label in labels:
            text = _cell(row, f"corrected_{label}")
            if not text:
                continue
            try:
                corrected[label] = _parse_count(text, max_count)
            except ValueError as error:
                problems.append(f"{where}, corrected_{label}: {error}")
        comment = _cell(row, "comment")
        if not verdict:
            if corrected:
                problems.append(f"{where}: corrected counts given but no verdict (correct or wrong)")
            continue  # not reviewed
        if verdict not in VERDICTS:
            problems.append(f"{where}, verdict: {verdict[:80]!r} is not one of {list(VERDICTS)}")
            continue
        predicted = rows[sample_id]["predicted_rounded"]
        if verdict == "correct" and any(corrected[label] != predicted[label] for label in corrected):
            problems.append(f"{where}: verdict 'correct' but corrected counts differ from the prediction")
            continue
        if verdict == "wrong" and corrected and all(corrected[label] == predicted[label] for label in corrected):
            problems.append(f"{where}: verdict 'wrong' but every corrected count equals the prediction")
            continue
        verdicts.append(Verdict(sample_id, verdict, corrected if verdict == "wrong" else {}, comment, reviewer))
    return verdicts


def agreement(verdicts: list[Verdict], packet: dict) -> dict:
    """Share judged correct overall (whole pizza right) and per topping, over every verdict given."""
    labels = packet["labels"]
    predicted = {row["sample_id"]: row["predicted_rounded"] for row in packet["rows"]}
    n = len(verdicts)
    correct = sum(v.verdict == "correct" for v in verdicts)
    per_topping = {}
    for label in labels:
        answers = [v.topping_correct(label, predicted[v.sample_id][label]) for v in verdicts]
        judged = [answer for answer in answers if answer is not None]
        per_topping[label] = {
            "judged": len(judged),
            "correct": sum(judged),
            "share_correct": round(sum(judged) / len(judged), 4) if judged else None,
        }
    return {
        "verdicts": n,
        "samples": len({v.sample_id for v in verdicts}),
        "reviewers": sorted({v.reviewer for v in verdicts}),
        "correct": correct,
        "share_correct": round(correct / n, 4) if n else None,
        "per_topping": per_topping,
        "packet_rows": len(packet["rows"]),
    }
