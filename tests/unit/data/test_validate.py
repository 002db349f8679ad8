import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from doughflow.data.sources.fetch import fetch_source
from doughflow.data.validate import SchemaError, validate_shards
from tests.support.configs import PIZZA_COLUMNS as COLUMNS
from tests.support.configs import PIZZA_TARGETS as TARGETS


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_planted_corrupt_rows_are_quarantined_with_reasons(tiny_source, tmp_path):
    raw = fetch_source(str(tiny_source), tmp_path / "raw", rows_per_shard=100)
    result = validate_shards(raw, tmp_path / "valid", **COLUMNS)
    quarantine = pq.read_table(result.quarantine_path).to_pylist()
    assert result.rows_in == raw.rows
    assert result.rows_valid + result.rows_quarantined == raw.rows  # nothing is lost
    planted = {r["sample_id"] for r in pq.read_table(tiny_source).to_pylist() if r["defect"]}
    assert {row["sample_id"] for row in quarantine} == planted
    for row in quarantine:
        assert row["_reason"] and row["_source_file"].endswith(".parquet") and row["_source_row"] >= 0
        assert row["image"] is not None  # the original row is kept, bytes included
    assert set(result.reasons) <= {"image: undecodable", "count_pepperoni: out of range"}


def test_bad_rows_of_each_kind(tmp_path):
    png = _png()
    rows = {
        "sample_id": ["a", "b", "c", "d", "a", "", "g"],
        "customer_id": ["x", "x", None, "y", "y", "y", "y"],
        "image": [png, png[:20], png, png, png, png, b""],
        **{name: [1, 1, 1, 1, 1, 1, 1] for name in TARGETS},
    }
    rows["count_olive"] = [0, 1, 1, 2.5, 1, 1, 1]
    (tmp_path / "src").mkdir()
    pq.write_table(pa.table(rows), tmp_path / "src" / "part-0.parquet")
    raw = fetch_source(str(tmp_path / "src"), tmp_path / "raw")
    result = validate_shards(raw, tmp_path / "valid", **COLUMNS)
    reasons = {row["sample_id"]: row["_reason"] for row in pq.read_table(result.quarantine_path).to_pylist()}
    assert result.rows_valid == 1
    assert "undecodable" in reasons["b"]
    assert "missing group" in reasons["c"]
    assert "not a whole number" in reasons["d"]
    assert "duplicate id" in reasons["a"]
    assert "missing id" in reasons[""]
    assert "empty image" in reasons["g"]


def test_missing_or_mistyped_columns_stop_naming_file_and_column(tmp_path):
    (tmp_path / "src").mkdir()
    pq.write_table(
        pa.table({"sample_id": ["a"], "customer_id": ["x"], "image": [_png()]}), tmp_path / "src" / "p.parquet"
    )
    raw = fetch_source(str(tmp_path / "src"), tmp_path / "raw")
    with pytest.raises(SchemaError, match=r"p\.parquet-\w+-00000\.parquet: missing column\(s\) \['count_pepperoni'"):
        validate_shards(raw, tmp_path / "valid", **COLUMNS)
    (tmp_path / "src" / "p.parquet").unlink()
    pq.write_table(
        pa.table({"sample_id": ["a"], "customer_id": ["x"], "image": ["not bytes"], **{n: [1] for n in TARGETS}}),
        tmp_path / "src" / "p.parquet",
    )
    raw = fetch_source(str(tmp_path / "src"), tmp_path / "raw2")
    with pytest.raises(SchemaError, match="column 'image' must hold encoded image bytes"):
        validate_shards(raw, tmp_path / "valid2", **COLUMNS)


def test_non_finite_labels_are_quarantined_naming_the_field(tmp_path):
    """inf once stopped validate with a bare OverflowError; now every non-finite or overflowing value is
    a quarantine row naming its column, and rows in = valid + quarantined."""
    png = _png()
    values = [1.0, float("inf"), float("-inf"), float("nan"), 1e300, -0.0, None]
    rows = {
        "sample_id": [f"s{i}" for i in range(len(values))],
        "customer_id": ["x"] * len(values),
        "image": [png] * len(values),
        **{name: [1] * len(values) for name in TARGETS},
    }
    rows["count_olive"] = values
    (tmp_path / "src").mkdir()
    pq.write_table(pa.table(rows), tmp_path / "src" / "part-0.parquet")
    raw = fetch_source(str(tmp_path / "src"), tmp_path / "raw")
    result = validate_shards(raw, tmp_path / "valid", **COLUMNS)
    reasons = {row["sample_id"]: row["_reason"] for row in pq.read_table(result.quarantine_path).to_pylist()}
    assert result.rows_valid + result.rows_quarantined == len(values) and result.rows_valid == 2  # 1.0 and -0.0
    for sample_id in ("s1", "s2", "s3"):
        assert reasons[sample_id].startswith("count_olive: count ") and "not a finite number" in reasons[sample_id]
    assert reasons["s4"] == "count_olive: count 1e+300 outside 0..20"
    assert reasons["s6"] == "count_olive: missing label"
    assert result.reasons["count_olive: not finite"] == 3


def test_non_finite_labels_in_a_labels_csv(tmp_path):
    """An image folder's labels.csv: cells "inf" and "-inf" parse as floats and are quarantined naming the
    column; "nan" and empty cells are nulls (a missing label)."""
    values = ["1", "inf", "-inf", "nan", ""]
    (tmp_path / "src").mkdir()
    lines = ["path,customer_id," + ",".join(TARGETS)]
    for i, value in enumerate(values):
        (tmp_path / "src" / f"s{i}.png").write_bytes(_png())
        lines.append(f"s{i}.png,x," + ",".join([value] + ["1"] * (len(TARGETS) - 1)))
    (tmp_path / "src" / "labels.csv").write_text("\n".join(lines) + "\n")
    raw = fetch_source(str(tmp_path / "src"), tmp_path / "raw")
    result = validate_shards(raw, tmp_path / "valid", **COLUMNS)
    reasons = {row["sample_id"]: row["_reason"] for row in pq.read_table(result.quarantine_path).to_pylist()}
    assert result.rows_valid + result.rows_quarantined == 5 and result.rows_valid == 1
    assert "not a finite number" in reasons["s1.png"] and "not a finite number" in reasons["s2.png"]
    assert reasons["s3.png"] == reasons["s4.png"] == "count_pepperoni: missing label"


def test_ids_with_control_characters_or_megabytes_are_quarantined(tmp_path):
    png = _png()
    rows = {
        "sample_id": ["ok", "two\nlines", "x" * 513, "fine", "y" * 512],
        "customer_id": ["c", "c", "c", "nul\x00group", "c"],
        "image": [png] * 5,
        **{name: [1] * 5 for name in TARGETS},
    }
    (tmp_path / "src").mkdir()
    pq.write_table(pa.table(rows), tmp_path / "src" / "part-0.parquet")
    result = validate_shards(fetch_source(str(tmp_path / "src"), tmp_path / "raw"), tmp_path / "valid", **COLUMNS)
    reasons = {row["_source_row"]: row["_reason"] for row in pq.read_table(result.quarantine_path).to_pylist()}
    assert result.rows_valid == 2 and result.rows_valid + result.rows_quarantined == 5
    assert reasons == {
        1: "id holds control character U+000A",
        2: "id over 512 characters (513)",
        3: "group id holds control character U+0000",
    }
    assert result.reasons == {"id: unusable": 2, "group: unusable": 1}
