"""Reading verdict files: every bad row is named; agreement per topping and overall."""

import csv

import pytest

from doughflow.review.packet import csv_columns
from doughflow.review.verdicts import Verdict, VerdictError, agreement, read_verdicts

LABELS = ["pepperoni", "olive"]
PACKET = {
    "run_id": "r",
    "labels": LABELS,
    "max_count": 6,
    "rows": [
        {"sample_id": f"s{i}", "reasons": [], "predicted_rounded": {"pepperoni": i % 3, "olive": 1}} for i in range(6)
    ],
}


def write(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_columns(LABELS))
        writer.writeheader()
        for row in rows:
            writer.writerow({"reasons": "", **row})
    return path


def test_valid_file_skips_unjudged_rows(tmp_path):
    path = write(
        tmp_path / "v.csv",
        [
            {"sample_id": "s0", "verdict": "correct"},
            {"sample_id": "s1", "verdict": "Wrong", "corrected_olive": "3", "comment": "three, not one"},
            {"sample_id": "s2", "verdict": ""},
            {"sample_id": "s3", "verdict": "wrong"},
            {"sample_id": "s4", "verdict": "correct", "corrected_olive": "1"},  # restating the prediction is fine
        ],
    )
    verdicts = read_verdicts(path, PACKET, "ana")
    assert [(v.sample_id, v.verdict, v.corrected) for v in verdicts] == [
        ("s0", "correct", {}),
        ("s1", "wrong", {"olive": 3}),
        ("s3", "wrong", {}),
        ("s4", "correct", {}),
    ]
    assert verdicts[1].comment == "three, not one" and {v.reviewer for v in verdicts} == {"ana"}


def test_every_bad_row_is_named(tmp_path):
    path = write(
        tmp_path / "bad.csv",
        [
            {"sample_id": "s0", "verdict": "correct"},
            {"sample_id": "nope", "verdict": "correct"},
            {"sample_id": "s0", "verdict": "wrong", "corrected_olive": "2"},
            {"sample_id": "s1", "verdict": "wrong", "corrected_olive": "-1"},
            {"sample_id": "s2", "verdict": "wrong", "corrected_pepperoni": "2.5"},
            {"sample_id": "s3", "verdict": "wrong", "corrected_olive": "7"},
            {"sample_id": "s4", "verdict": "maybe"},
            {"sample_id": "s5", "verdict": "correct", "corrected_olive": "4"},
            {"sample_id": "s1", "verdict": ""},
        ],
    )
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
    path = write(
        tmp_path / "c.csv",
        [
            {"sample_id": "s1", "verdict": "wrong", "corrected_pepperoni": "1"},
            {"sample_id": "s2", "verdict": "", "corrected_olive": "2"},
        ],
    )
    with pytest.raises(VerdictError) as caught:
        read_verdicts(path, PACKET, "ana")
    assert caught.value.problems == [
        "row 2 (sample_id s1): verdict 'wrong' but every corrected count equals the prediction",
        "row 3 (sample_id s2): corrected counts given but no verdict (correct or wrong)",
    ]


def test_agreement_per_topping_and_overall():
    verdicts = [
        Verdict("s0", "correct", reviewer="ana"),
        Verdict("s1", "wrong", {"olive": 3}, reviewer="ana"),
        Verdict("s2", "wrong", {}, reviewer="bo"),
        Verdict("s3", "correct", reviewer="bo"),
    ]
    figures = agreement(verdicts, PACKET)
    assert figures["share_correct"] == 0.5 and figures["samples"] == 4 and figures["reviewers"] == ["ana", "bo"]
    # s2 ("wrong", nothing corrected) says nothing per topping; s1 corrected only the olives
    assert figures["per_topping"]["pepperoni"] == {"judged": 3, "correct": 3, "share_correct": 1.0}
    assert figures["per_topping"]["olive"] == {"judged": 3, "correct": 2, "share_correct": 0.6667}
    assert agreement([], PACKET)["share_correct"] is None


def test_non_finite_counts_are_refused_naming_the_row(tmp_path):
    path = write(
        tmp_path / "nf.csv",
        [
            {"sample_id": "s1", "verdict": "wrong", "corrected_olive": "inf"},
            {"sample_id": "s2", "verdict": "wrong", "corrected_olive": "nan"},
            {"sample_id": "s3", "verdict": "wrong", "corrected_pepperoni": "-Infinity"},
            {"sample_id": "s4", "verdict": "wrong", "corrected_olive": "1e309"},
        ],
    )
    with pytest.raises(VerdictError) as caught:
        read_verdicts(path, PACKET, "ana")
    assert caught.value.problems == [
        "row 2 (sample_id s1), corrected_olive: 'inf' is not a finite number (a whole number from 0 to 6)",
        "row 3 (sample_id s2), corrected_olive: 'nan' is not a finite number (a whole number from 0 to 6)",
        "row 4 (sample_id s3), corrected_pepperoni: '-Infinity' is not a finite number (a whole number from 0 to 6)",
        "row 5 (sample_id s4), corrected_olive: '1e309' is not a finite number (a whole number from 0 to 6)",
    ]


def test_neutralised_cells_read_back_as_their_values(tmp_path):
    packet = {
        **PACKET,
        "rows": [
            *PACKET["rows"],
            {"sample_id": "=1+1", "reasons": [], "predicted_rounded": {"pepperoni": 0, "olive": 1}},
        ],
    }
    path = write(
        tmp_path / "q.csv",
        [{"sample_id": "'=1+1", "verdict": "wrong", "corrected_olive": "2", "comment": "'-2 olives, '@ once"}],
    )
    [verdict] = read_verdicts(path, packet, "ana")
    assert verdict.sample_id == "=1+1" and verdict.comment == "-2 olives, '@ once"


def test_unreadable_bytes_are_named_not_raised(tmp_path):
    header = ",".join(csv_columns(LABELS)) + "\n"
    cases = {
        "nul.csv": (header + "s0,,0,0,correct,,,ok\x00\n").encode(),
        "latin1.csv": (header + "s0,,0,0,correct,,,caf\xe9\n").encode("latin-1"),
        "huge.csv": (header + "s0,,0,0,correct,,," + "x" * 200_000 + "\n").encode(),
        "binary.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    }
    messages = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(VerdictError) as caught:
            read_verdicts(tmp_path / name, PACKET, "ana")
        assert name in str(caught.value)
        messages[name] = caught.value.problems[0]
    assert messages["nul.csv"] == "row 2 (sample_id s0), comment: control character U+0000 in the cell"
    assert messages["latin1.csv"].startswith("row 2: not UTF-8 text")
    assert messages["huge.csv"].startswith("row 2: unreadable CSV (field larger than field limit")
    assert messages["binary.csv"].startswith(("row 1: not UTF-8 text", "row 1: unreadable CSV", "header (row 1)"))


def test_a_flood_of_problems_is_summarised(tmp_path):
    path = write(tmp_path / "flood.csv", [{"sample_id": f"x{i}", "verdict": "correct"} for i in range(500)])
    with pytest.raises(VerdictError) as caught:
        read_verdicts(path, PACKET, "ana")
    assert len(caught.value.problems) == 500 and "... and 450 more" in str(caught.value)
    assert str(caught.value).count("\n") == 51
