"""Hostile inputs through the public entry points: ``flows.prepare`` (the data stages of every run) with
hostile rows and hostile source files, ``flows.review`` with hostile verdict files, ``flows.verify`` on a
tampered bundle. Each input ends in a quarantine row whose reason names the field, or in an error naming
the file, row or field; rows in = valid + quarantined; and nothing outside the artifacts folder changes
(the sandbox fixture, tests/security/conftest.py). The rendering of hostile text in the report and the
review page is tests/security/test_pages.py; signatures, run ids and manifests are test_trust.py.

One prepare run carries every row-level case (a shard of hostile rows beside the tiny pizza set), so
the row cases cost one flow run together; each whole-file case is its own short run that stops at fetch
or validate.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doughflow.cli.flow import run_flow_cli
from doughflow.review.packet import csv_columns, load_packet
from tests.support.configs import TINY_OVERRIDES
from tests.support.hostile import FORMULA_PAYLOADS, SCRIPT_PAYLOADS
from tests.support.review import LABELS, packet_run

ROOT = Path(__file__).resolve().parents[2]
COUNTS = [f"count_{label}" for label in ("pepperoni", "mushroom", "olive", "basil", "pepper")]


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring width x height RGB (30 GB decoded), with a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + chunk(b"IEND", b"")
    )


def gif_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="GIF")
    return buffer.getvalue()


def prepare(sandbox, source: Path, *extra: str) -> dict:
    from flows.prepare import prepare as prepare_flow

    argv = [
        "--config",
        str(ROOT / "configs" / "pizza.yaml"),
        *TINY_OVERRIDES,
        f"data.source.url={source}",
        f"artifacts_dir={sandbox.artifacts}",
        *extra,
    ]
    return run_flow_cli(prepare_flow, argv=argv)


# --- row-level cases: one shared prepare run -------------------------------------------------------------
# name -> (changes to a good row, expected outcome): ("quarantine", text the reason holds) or ("valid", None).
# Ids are h-<name> unless the case is about the id; customer ids hc-<name> unless it is about the group.
ROW_CASES: dict[str, tuple[dict, tuple[str, str | None]]] = {
    "png_bomb_100000x100000": ({"image": png_bomb()}, ("quarantine", "image: ")),
    "truncated_png": ({"image": "TRUNCATE"}, ("quarantine", "image: undecodable")),
    "html_bytes_as_image": ({"image": SCRIPT_PAYLOADS[0].encode()}, ("quarantine", "image: an unknown format")),
    "empty_image": ({"image": b""}, ("quarantine", "image: empty")),
    "count_inf": ({"count_olive": float("inf")}, ("quarantine", "count_olive: count inf is not a finite number")),
    "count_minus_inf": ({"count_olive": float("-inf")}, ("quarantine", "count_olive: count -inf is not a finite")),
    "count_nan": ({"count_basil": float("nan")}, ("quarantine", "count_basil: count nan is not a finite number")),
    "count_overflow_1e300": ({"count_olive": 1e300}, ("quarantine", "count_olive: count 1e+300 outside 0..20")),
    "count_negative": ({"count_pepper": -1.0}, ("quarantine", "count_pepper: count -1.0 outside 0..20")),
    "count_fraction": ({"count_pepper": 2.5}, ("quarantine", "count_pepper: count 2.5 is not a whole number")),
    "count_missing": ({"count_mushroom": None}, ("quarantine", "count_mushroom: missing label")),
    "duplicate_id": ({"sample_id": "DUPLICATE"}, ("quarantine", "sample_id: duplicate id")),
    "missing_id": ({"sample_id": None}, ("quarantine", "missing id")),
    "missing_group": ({"customer_id": None}, ("quarantine", "missing group id")),
    "id_with_newline_forging_a_log_line": (
        {"sample_id": "h-nl\nINFO forged: all rows valid"},
        ("quarantine", "id holds control character U+000A"),
    ),
    "id_with_nul": ({"sample_id": "h-nul\x00tail"}, ("quarantine", "id holds control character U+0000")),
    "oversized_id_100kb": ({"sample_id": "h-big-" + "x" * 100_000}, ("quarantine", "id over 512 characters")),
    "oversized_group_1mb": ({"customer_id": "hc-" + "y" * 1_000_000}, ("quarantine", "group id over 512 characters")),
    "path_like_id": ({"sample_id": "../../etc/passwd"}, ("valid", None)),
    "path_like_group": ({"customer_id": "../../secrets/id_ed25519"}, ("valid", None)),
    "html_in_every_text_column": (
        {
            "sample_id": SCRIPT_PAYLOADS[1],
            "customer_id": SCRIPT_PAYLOADS[2],
            "recipe": SCRIPT_PAYLOADS[0],
            "dup_of": SCRIPT_PAYLOADS[3],
            "dup_kind": SCRIPT_PAYLOADS[4],
            "defect": SCRIPT_PAYLOADS[5],
        },
        ("valid", None),
    ),
    "formula_cells": (
        {"sample_id": FORMULA_PAYLOADS[0], "customer_id": FORMULA_PAYLOADS[1], "recipe": FORMULA_PAYLOADS[3]},
        ("valid", None),
    ),
    # accounted for either way today; quarantined naming the format once data.image_formats exists (below)
    "gif_mislabelled_as_pizza_photo": ({"image": gif_bytes()}, ("either", None)),
}


def hostile_rows(good: dict) -> list[dict]:
    rows = []
    for name, (changes, _) in ROW_CASES.items():
        row = {
            **good,
            "sample_id": f"h-{name}",
            "customer_id": f"hc-{name}",
            "recipe": "hostile",
            "dup_of": "",
            "dup_kind": "",
            "defect": "",
        }
        for column, value in changes.items():
            row[column] = (
                good["image"][:60] if value == "TRUNCATE" else good["sample_id"] if value == "DUPLICATE" else value
            )
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def rows_run(prefect_api, module_sandbox, tiny_source):
    """The tiny pizza set plus one shard of hostile rows (float counts, so inf and nan fit), prepared once."""
    source = module_sandbox.inputs("rows")
    for shard in sorted(tiny_source.glob("*.parquet")):
        shutil.copy(shard, source / shard.name)
    good = pq.read_table(sorted(tiny_source.glob("*.parquet"))[0]).slice(0, 1).to_pylist()[0]
    rows = hostile_rows(good)
    schema = pa.schema(
        [
            pa.field("sample_id", pa.string()),
            pa.field("image", pa.binary()),
            pa.field("customer_id", pa.string()),
            pa.field("recipe", pa.string()),
            *[pa.field(c, pa.float64()) for c in COUNTS],
            pa.field("dup_of", pa.string()),
            pa.field("dup_kind", pa.string()),
            pa.field("defect", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), source / "zz-hostile.parquet")
    module_sandbox.seal()
    summary = prepare(module_sandbox, source)
    run = module_sandbox.artifacts / summary["run_id"]
    quarantine = pq.read_table(run / "data" / "valid" / "quarantine.parquet").to_pylist()
    valid = [
        row
        for path in sorted((run / "data" / "valid").glob("part-*.parquet"))
        for row in pq.read_table(path, columns=["sample_id", "customer_id"]).to_pylist()
    ]
    return {"summary": summary, "rows": rows, "run": run, "valid": valid, "quarantined": quarantine}


def test_rows_in_equal_valid_plus_quarantined(rows_run):
    steps = rows_run["summary"]["rows"]
    assert steps["fetched"] == steps["valid"] + steps["quarantined"]
    assert len(rows_run["valid"]) == steps["valid"] and len(rows_run["quarantined"]) == steps["quarantined"]


@pytest.mark.parametrize("name", list(ROW_CASES))
def test_hostile_row(rows_run, name):
    changes, (outcome, reason) = ROW_CASES[name]
    row = rows_run["rows"][list(ROW_CASES).index(name)]
    identity = (row["sample_id"], row["customer_id"])
    quarantined = [
        q
        for q in rows_run["quarantined"]
        if (q["sample_id"], q["customer_id"]) == identity and q["recipe"] == "hostile"
    ]
    valid = [v for v in rows_run["valid"] if (v["sample_id"], v["customer_id"]) == identity]
    if outcome == "quarantine":
        assert len(quarantined) == 1 and not valid, (name, quarantined, valid)
        assert reason in quarantined[0]["_reason"], (name, quarantined[0]["_reason"])
        assert quarantined[0]["_source_row"] >= 0 and "zz-hostile" in quarantined[0]["_source_file"]
        kept = {k: v for k, v in quarantined[0].items() if not k.startswith("_")}
        assert kept["image"] == row["image"] and kept["sample_id"] == row["sample_id"]  # nothing lost
    elif outcome == "valid":
        assert len(valid) == 1 and not quarantined, (name, quarantined, valid)
    else:
        assert len(valid) + len(quarantined) == 1, (name, quarantined, valid)


def test_bombs_and_foreign_formats_are_quarantined_by_header(rows_run):
    reasons = {q["sample_id"]: q["_reason"] for q in rows_run["quarantined"]}
    assert "pixel" in reasons["h-png_bomb_100000x100000"].lower()
    assert "gif" in reasons.get("h-gif_mislabelled_as_pizza_photo", "").lower()


# --- whole-file cases: each stops its own prepare run, naming the file ----------------------------------


def one_shard(tiny_source: Path) -> pa.Table:
    return pq.read_table(sorted(tiny_source.glob("*.parquet"))[0])


def file_case(name: str, sandbox, tiny_source: Path) -> tuple[Path, str]:
    """Build the hostile source of case ``name``; returns it and what the error must say."""
    source = sandbox.inputs(name)
    table = one_shard(tiny_source)
    pq.write_table(table, source / "part-0.parquet")
    if name == "truncated_parquet":
        data = (source / "part-0.parquet").read_bytes()
        (source / "part-1.parquet").write_bytes(data[: len(data) // 2])
        return source, "cannot read Parquet source file part-1.parquet"
    if name == "csv_mislabelled_as_parquet":
        (source / "part-1.parquet").write_text("sample_id,customer_id\na,b\n")
        return source, "cannot read Parquet source file part-1.parquet"
    if name == "missing_label_column":
        (source / "part-0.parquet").unlink()
        pq.write_table(table.drop_columns(["count_olive"]), source / "only.parquet")
        return source, "missing column(s) ['count_olive']"
    if name == "label_column_of_strings":
        (source / "part-0.parquet").unlink()
        column = table.column("count_olive").cast(pa.string())
        pq.write_table(
            table.set_column(table.schema.get_field_index("count_olive"), "count_olive", column),
            source / "only.parquet",
        )
        return source, "label column 'count_olive' must be numeric"
    if name == "symlink_to_a_private_key":
        os.symlink(sandbox.root / "secrets" / "id_ed25519", source / "part-1.parquet")
        return source, "part-1.parquet is a symbolic link to"
    if name == "fifo_in_source_folder":
        os.mkfifo(source / "part-1.parquet")
        return source, "part-1.parquet is not a regular file"
    if name == "malformed_csv_row":
        (source / "part-0.parquet").unlink()
        (source / "rows.csv").write_text("sample_id,customer_id,count_olive\na,cust-1,1\nb,cust-secret-42\n")
        return source, "rows.csv of"
    raise KeyError(name)


FILE_CASES = [
    "truncated_parquet",
    "csv_mislabelled_as_parquet",
    "missing_label_column",
    "label_column_of_strings",
    "symlink_to_a_private_key",
    "fifo_in_source_folder",
    "malformed_csv_row",
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", FILE_CASES)
def test_hostile_source_file(prefect_api, sandbox, tiny_source, name):
    source, expected = file_case(name, sandbox, tiny_source)
    sandbox.seal()
    with pytest.raises(Exception) as caught:
        prepare(sandbox, source)
    message = str(caught.value)
    assert expected in message, message
    if name == "malformed_csv_row":
        assert "row 3: CSV parse error" in message and "cust-secret-42" not in message
    if name == "symlink_to_a_private_key":  # the key's bytes were never copied anywhere
        secret = (sandbox.root / "secrets" / "id_ed25519").read_bytes()
        assert not any(secret in p.read_bytes() for p in sandbox.artifacts.rglob("*") if p.is_file())


# --- flows.review: hostile verdict files ---------------------------------------------------------------


def verdict_file(path: Path, packet: dict, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_columns(LABELS))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def review(run: Path, verdicts: Path, capsys, *extra: str) -> tuple[int, str]:
    from doughflow.cli.review import main

    code = main([str(run), str(verdicts), "--reviewer", "Chef Ana", *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def first(packet: dict, i: int = 0) -> dict:
    row = packet["rows"][i]
    return {
        "sample_id": row["sample_id"],
        "verdict": "wrong",
        "corrected_olive": str(row["predicted_rounded"]["olive"] + 1),
    }


REVIEW_CASES = {
    "corrected_inf": (lambda p: [{**first(p), "corrected_olive": "inf"}], "row 2 (sample_id pz-"),
    "corrected_nan": (lambda p: [{**first(p), "corrected_olive": "nan"}], "'nan' is not a finite number"),
    "corrected_1e309": (lambda p: [{**first(p), "corrected_olive": "1e309"}], "'1e309' is not a finite number"),
    "unknown_id_with_html": (lambda p: [{**first(p), "sample_id": SCRIPT_PAYLOADS[0]}], "unknown sample_id"),
    "duplicate_rows": (lambda p: [first(p), first(p)], "row 3 (sample_id pz-"),
    "oversized_comment_200kb": (lambda p: [{**first(p), "comment": "x" * 200_000}], "field larger than field limit"),
    "nul_in_comment": (lambda p: [{**first(p), "comment": "ok\x00hidden"}], "comment: control character U+0000"),
}


@pytest.mark.parametrize("name", list(REVIEW_CASES))
def test_hostile_verdict_file_is_refused_naming_the_row(sandbox, capsys, name):
    run = packet_run(sandbox.artifacts)
    packet = load_packet(run / "review")
    rows, expected = REVIEW_CASES[name]
    verdicts = verdict_file(sandbox.inputs("verdicts") / f"{name}.csv", packet, rows(packet))
    sandbox.seal()
    code, output = review(run, verdicts, capsys)
    assert code == 2 and expected in output, output
    assert "Traceback" not in output
    if name == "corrected_inf":
        assert "corrected_olive: 'inf' is not a finite number" in output


def test_verdict_bytes_that_are_not_text(sandbox, capsys):
    run = packet_run(sandbox.artifacts)
    folder = sandbox.inputs("verdicts")
    header = ",".join(csv_columns(LABELS)) + "\n"
    (folder / "latin1.csv").write_bytes((header + "pz-0000000,,0,0,0,correct,,,,caf\xe9\n").encode("latin-1"))
    (folder / "huge.csv").write_bytes(header.encode() + b"x" * (65 << 20))
    os.symlink(sandbox.root / "secrets" / "id_ed25519", folder / "link.csv")
    sandbox.seal()
    code, output = review(run, folder / "latin1.csv", capsys)
    assert code == 2 and "row 2: not UTF-8 text" in output
    code, output = review(run, folder / "huge.csv", capsys)
    assert code == 2 and "over 64 MiB" in output
    code, output = review(run, folder, capsys)  # a folder, not a file
    assert code == 2 and "cannot open" in output
    code, output = review(run, folder / "link.csv", capsys)  # a link to a key: read as the CSV it is not
    assert code == 2 and "header (row 1): missing column(s)" in output


def test_formula_ids_and_comments_round_trip_through_the_template(sandbox, capsys):
    """Ids that are formulas: the template neutralises them, a filled template imports them exactly."""
    ids = FORMULA_PAYLOADS + [p for p in SCRIPT_PAYLOADS if len(p) < 80]
    run = packet_run(sandbox.artifacts, n=len(ids), ids=ids, min_reviewed=1, per_stratum=5)
    with open(run / "review" / "verdicts_template.csv", newline="") as handle:
        template = list(csv.DictReader(handle))
    assert not any(row["sample_id"].startswith(tuple("=+-@")) for row in template)
    for row in template:
        row["verdict"], row["comment"] = "correct", "'=1+1 and -2 olives"
    verdicts = sandbox.inputs("verdicts") / "filled.csv"
    with open(verdicts, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(template[0]))
        writer.writeheader()
        writer.writerows(template)
    sandbox.seal()
    code, output = review(run, verdicts, capsys, "--reviewer", '<script>window.__pwned=1</script> "Ana"')
    assert code in (0, 3), output
    from doughflow.registry import load_verdicts

    stored = load_verdicts(sandbox.artifacts / "registry.sqlite", "pizza-test-run")
    packet_ids = {row["sample_id"] for row in load_packet(run / "review")["rows"]}
    assert set(FORMULA_PAYLOADS) <= packet_ids and {v["sample_id"] for v in stored} == packet_ids
    assert {v["comment"] for v in stored} == {"=1+1 and -2 olives"}
    card = (run / "bundle" / "model_card.md").read_text()
    assert "<script>" not in card and "&lt;script&gt;window.\\_\\_pwned=1&lt;/script&gt; &quot;Ana&quot;" in card


def test_tampered_bundle_file_is_named_by_verify(sandbox, capsys):
    from doughflow.cli.verify import main as verify

    run = packet_run(sandbox.artifacts)
    sandbox.seal()
    card = run / "bundle" / "model_card.md"
    card.write_text(card.read_text() + "\n<script>window.__pwned=1</script>\n")
    code = verify([str(run / "bundle")])
    output = capsys.readouterr()
    assert code == 1 and "model_card.md" in output.err
