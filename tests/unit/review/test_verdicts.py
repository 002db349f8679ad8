"""Reading verdict files: every bad row is named; agreement per topping and overall."""

import csv

import pytest

from doughflow.review.packet import csv_columns
from doughflow.review.verdicts import Verdict, VerdictError, agreement, read_verdicts

LABELS = ["pepperoni", "olive"]
PACKET = {"run_id": "r", "labels": LABELS, "max_count": 6, "rows": [
    {"sample_id": f"s{i}", "reasons": [], "predicted_rounded": {"pepperoni": i % 3, "olive": 1}} for i in range(6)]}


def write(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_columns(LABELS))
        writer.writeheader()
        for row in rows:
            writer.writerow({"reasons": "", **row})
    return path


def test_valid_file_skips_unjudged_rows(tmp_path):
    path = write(tmp_path / "v.csv", [
        {"sample_id": "s0", "verdict": "correct"},
        {"sample_id": "s1", "verdict": "Wrong", "corrected_olive": "3", "comment": "three, not one"},
        {"sample_id": "s2", "verdict": ""},
        {"sample_id": "s3", "verdict": "wrong"},
        {"sample_id": "s4", "verdict": "correct", "corrected_olive": "1"},  # restating the prediction is fine
    ])
    verdicts = read_verdicts(path, PACKET, "ana")
    assert [(v.sample_id, v.verdict, v.corrected) for v in verdicts] == [
        ("s0", "correct", {}), ("s1", "wrong", {"olive": 3}), ("s3", "wrong", {}), ("s4", "correct", {})]
    assert verdicts[1].comment == "three, not one" and {v.reviewer for v in verdicts} == {"ana"}


def test_every_bad_row_is_named(tmp_path):
    path = write(tmp_path / "bad.csv", [
        {"sample_id": "s0", "verdict": "correct"},
        {"sample_id": "nope", "verdict": "correct"},
        {"sample_id": "s0", "verdict": "wrong", "corrected_olive": "2"},
        {"sample_id": "s1", "verdict": "wrong", "corrected_olive": "-1"},
        {"sample_id": "s2", "verdict": "wrong", "corrected_pepperoni": "2.5"},
        {"sample_id": "s3", "verdict": "wrong", "corrected_olive": "7"},
        {"sample_id": "s4", "verdict": "maybe"},
        {"sample_id": "s5", "verdict": "correct", "corrected_olive": "4"},
        {"sample_id": "s1", "verdict": ""},
    ])
    with pytest.raises(VerdictError) as caught:
        read_verdicts(path, PACKET, "ana")
    problems = caught.value.problems
    text = str(caught.value)
    assert "bad.csv" in text
    assert "row 3 (sample_id nope): unknown sample_id" in problems[0]
    assert "row 4 (sample_id s0): duplicate of row 2" in problems[1]
    assert "row 5 (sample_id s1), corrected_olive: impossible count '-1'" in problems[2]
    assert "row 6 (sample_id s2), corrected_pepperoni: impossible count '2.5'" in problems[3]
    assert "row 7 (sample_id s3), corrected_olive: impossible count '7' (a whole number from 0 to 6)" in problems[4]
    assert "row 8 (sample_id s4), verdict: 'maybe'" in problems[5]
    assert "row 9 (sample_id s5): verdict 'correct' but corrected counts differ" in problems[6]
    assert "row 10 (sample_id s1): duplicate of row 5" in problems[7]
    assert len(problems) == 8


def test_missing_columns_and_contradictions(tmp_path):
    path = tmp_path / "nohead.csv"
    path.write_text("id,judgement\ns0,correct\n")
    with pytest.raises(VerdictError, match=r"header \(row 1\): missing column\(s\) \['sample_id', 'verdict'\]"):
        read_verdicts(path, PACKET, "ana")
    path = write(tmp_path / "c.csv", [{"sample_id": "s1", "verdict": "wrong", "corrected_pepperoni": "1"},
                                      {"sample_id": "s2", "verdict": "", "corrected_olive": "2"}])
    with pytest.raises(VerdictError) as caught:
        read_verdicts(path, PACKET, "ana")
    assert caught.value.problems == [
        "row 2 (sample_id s1): verdict 'wrong' but every corrected count equals the prediction",
        "row 3 (sample_id s2): corrected counts given but no verdict (correct or wrong)"]


def test_agreement_per_topping_and_overall():
    verdicts = [Verdict("s0", "correct", reviewer="ana"), Verdict("s1", "wrong", {"olive": 3}, reviewer="ana"),
                Verdict("s2", "wrong", {}, reviewer="bo"), Verdict("s3", "correct", reviewer="bo")]
    figures = agreement(verdicts, PACKET)
    assert figures["share_correct"] == 0.5 and figures["samples"] == 4 and figures["reviewers"] == ["ana", "bo"]
    # s2 ("wrong", nothing corrected) says nothing per topping; s1 corrected only the olives
    assert figures["per_topping"]["pepperoni"] == {"judged": 3, "correct": 3, "share_correct": 1.0}
    assert figures["per_topping"]["olive"] == {"judged": 3, "correct": 2, "share_correct": 0.6667}
    assert agreement([], PACKET)["share_correct"] is None
