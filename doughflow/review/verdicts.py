"""Read a reviewer's verdict CSV against its packet, and measure agreement.

Every problem names the file, the row (as a spreadsheet shows it: the header is row 1) and the field,
because the file was filled in by hand and the person fixing it needs to find the cell.
A row with an empty verdict was not reviewed and is skipped; predicted_* columns are ignored (the
packet holds what the model predicted, so an edited prediction cannot change the judgement).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from doughflow.review.packet import VERDICTS


class VerdictError(ValueError):
    """The verdict file is unusable; ``problems`` lists every bad row, not only the first."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


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
    value = float(text)
    if value != int(value) or value < 0 or value > max_count:
        raise ValueError
    return int(value)


def read_verdicts(path: Path, packet: dict, reviewer: str) -> list[Verdict]:
    path = Path(path)
    labels, max_count = packet["labels"], packet["max_count"]
    rows = {row["sample_id"]: row for row in packet["rows"]}
    problems: list[str] = []
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise VerdictError(path, [f"cannot open: {error}"]) from error
    with handle:
        reader = csv.DictReader(handle)
        required = ["sample_id", "verdict"]
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise VerdictError(path, [f"header (row 1): missing column(s) {missing}; found {reader.fieldnames}"])
        seen: dict[str, int] = {}
        verdicts: list[Verdict] = []
        for number, row in enumerate(reader, start=2):
            where = f"row {number}"
            sample_id = (row.get("sample_id") or "").strip()
            if not sample_id:
                problems.append(f"{where}: empty sample_id")
                continue
            where += f" (sample_id {sample_id})"
            if sample_id not in rows:
                problems.append(f"{where}: unknown sample_id, not in this run's review packet")
                continue
            if sample_id in seen:
                problems.append(f"{where}: duplicate of row {seen[sample_id]}")
                continue
            seen[sample_id] = number
            verdict = (row.get("verdict") or "").strip().lower()
            corrected: dict[str, int] = {}
            for label in labels:
                text = (row.get(f"corrected_{label}") or "").strip()
                if not text:
                    continue
                try:
                    corrected[label] = _parse_count(text, max_count)
                except ValueError:
                    problems.append(f"{where}, corrected_{label}: impossible count {text!r} "
                                    f"(a whole number from 0 to {max_count})")
            comment = (row.get("comment") or "").strip()
            if not verdict:
                if corrected:
                    problems.append(f"{where}: corrected counts given but no verdict (correct or wrong)")
                continue  # not reviewed
            if verdict not in VERDICTS:
                problems.append(f"{where}, verdict: {verdict!r} is not one of {list(VERDICTS)}")
                continue
            predicted = rows[sample_id]["predicted_rounded"]
            if verdict == "correct" and any(corrected[label] != predicted[label] for label in corrected):
                problems.append(f"{where}: verdict 'correct' but corrected counts differ from the prediction")
                continue
            if verdict == "wrong" and corrected and all(corrected[label] == predicted[label] for label in corrected):
                problems.append(f"{where}: verdict 'wrong' but every corrected count equals the prediction")
                continue
            verdicts.append(Verdict(sample_id, verdict, corrected if verdict == "wrong" else {}, comment, reviewer))
    if problems:
        raise VerdictError(path, problems)
    return verdicts


def agreement(verdicts: list[Verdict], packet: dict) -> dict:
    """Share judged correct overall (whole pizza right) and per topping, over every verdict given."""
    labels = packet["labels"]
    predicted = {row["sample_id"]: row["predicted_rounded"] for row in packet["rows"]}
    n = len(verdicts)
    correct = sum(v.verdict == "correct" for v in verdicts)
    per_topping = {}
    for label in labels:
        judged = [v.topping_correct(label, predicted[v.sample_id][label]) for v in verdicts]
        judged = [j for j in judged if j is not None]
        per_topping[label] = {"judged": len(judged), "correct": sum(judged),
                              "share_correct": round(sum(judged) / len(judged), 4) if judged else None}
    return {"verdicts": n, "samples": len({v.sample_id for v in verdicts}),
            "reviewers": sorted({v.reviewer for v in verdicts}), "correct": correct,
            "share_correct": round(correct / n, 4) if n else None, "per_topping": per_topping,
            "packet_rows": len(packet["rows"])}
