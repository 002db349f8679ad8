"""The review page in a real headless browser: self-contained, fillable, exports verdicts as CSV."""

import csv
import json
import re

from doughflow.review.packet import PACKET, csv_columns, load_packet
from doughflow.review.verdicts import read_verdicts
from tests.support.browser import browser_page
from tests.support.hostile import ALL_TEXT_PAYLOADS, PWNED
from tests.support.review import LABELS, export_from_page, fill_in_page, read_csv, synthetic_packet


def test_packet_files_agree(tmp_path):
    made = synthetic_packet(tmp_path / "review")
    packet = load_packet(tmp_path / "review")
    rows = read_csv(tmp_path / "review" / "verdicts_template.csv")
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in packet["rows"]] and len(rows) == made[
        "result"
    ].rows
    assert list(rows[0]) == csv_columns(LABELS)
    assert all(r["verdict"] == "" for r in rows)
    page = (tmp_path / "review" / "review.html").read_text()
    assert page.count('class="sample"') == len(rows)
    assert page.count("data:image/png;base64,") == len(rows)
    # nothing is fetched from anywhere: no http(s) URLs, no external src/href
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "http://" not in page and "https://" not in page
    assert json.loads((tmp_path / "review" / PACKET).read_text())["strategy"]["max_samples"] == 60


def test_page_in_browser_exports_filled_verdicts(tmp_path):
    synthetic_packet(tmp_path / "review")
    packet = load_packet(tmp_path / "review")
    first, second, third = (row["sample_id"] for row in packet["rows"][:3])
    predicted_third = packet["rows"][2]["predicted_rounded"]["olive"]
    decisions = {
        first: ("correct", {}, ""),
        second: ("wrong", {"mushroom": 7}, 'two "mushrooms" hide, under basil, really'),
        third: ("wrong", {"olive": predicted_third + 1}, ""),
    }
    with browser_page(tmp_path) as (page, requests, errors):
        page.goto((tmp_path / "review" / "review.html").as_uri())
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth === 64)")
        assert page.locator("tr.sample").count() == len(packet["rows"])
        fill_in_page(page, decisions, reviewer="Chef Ana")
        assert page.text_content("#progress").startswith("3 of ")
        target = export_from_page(page, tmp_path / "exported.csv")
        suggested = page.evaluate("document.body.dataset.run")
        assert not errors, errors
        assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    rows = {row["sample_id"]: row for row in read_csv(target)}
    assert len(rows) == len(packet["rows"]) and suggested == "pizza-test-run"
    assert rows[first]["verdict"] == "correct"
    assert rows[second]["corrected_mushroom"] == "7" and rows[second]["comment"].startswith('two "mushrooms"')
    assert rows[third]["corrected_olive"] == str(predicted_third + 1)
    assert int(rows[first]["predicted_pepperoni"]) == packet["rows"][0]["predicted_rounded"]["pepperoni"]
    verdicts = {v.sample_id: v for v in read_verdicts(target, packet, "Chef Ana")}
    assert set(verdicts) == {first, second, third}
    assert verdicts[second].corrected == {"mushroom": 7} and verdicts[second].verdict == "wrong"


def test_export_is_named_after_run_and_reviewer(tmp_path):
    synthetic_packet(tmp_path / "review", n=12)
    with browser_page(tmp_path) as (page, _, errors):
        page.goto((tmp_path / "review" / "review.html").as_uri())
        page.fill("#reviewer", "Chef Ana")
        with page.expect_download() as info:
            page.click("#export")
        assert info.value.suggested_filename == "verdicts-pizza-test-run-Chef_Ana.csv"
        assert not errors


def test_hostile_ids_are_text_and_export_inert_cells(tmp_path):
    """Ids full of markup and formulas: shown as text, nothing runs (with the CSP and, separately, without
    it), the template and the export neutralise formula cells, and the importer gets every id back."""
    hostile = [p for p in ALL_TEXT_PAYLOADS if len(p) < 200]
    made = synthetic_packet(
        tmp_path / "review", n=len(hostile), ids=hostile, groups=hostile, max_samples=len(hostile), per_stratum=5
    )
    packet = load_packet(tmp_path / "review")
    ids = [row["sample_id"] for row in packet["rows"]]
    assert set(ids) == set(hostile) and made["result"].rows == len(hostile)
    template = (tmp_path / "review" / "verdicts_template.csv").read_text()
    with open(tmp_path / "review" / "verdicts_template.csv", newline="") as handle:
        first_cells = [row[0] for row in csv.reader(handle)][1:]
    assert not any(cell.startswith(tuple("=+-@\t\r")) for cell in first_cells), template
    page_html = (tmp_path / "review" / "review.html").read_text()
    stripped = tmp_path / "review" / "no_csp.html"
    stripped.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page_html))
    with browser_page(tmp_path) as (page, requests, errors):
        for path in (tmp_path / "review" / "review.html", stripped):
            page.goto(path.as_uri())
            page.wait_for_timeout(200)
            assert page.evaluate(PWNED) is None, path
            shown = page.eval_on_selector_all("tr.sample code", "codes => codes.map(c => c.textContent)")
            assert shown == ids
        page.goto((tmp_path / "review" / "review.html").as_uri())
        decisions = {
            sid: ("wrong", {"olive": packet["rows"][i]["predicted_rounded"]["olive"] + 1}, sid)
            for i, sid in enumerate(ids[:6])
        }
        for i, sid in enumerate(ids[:6]):  # by position: the ids are not valid in a CSS selector
            row = page.locator("tr.sample").nth(i)
            row.locator('input[type=radio][value="wrong"]').check()
            row.locator('input.corrected[data-label="olive"]').fill(str(decisions[sid][1]["olive"]))
            row.locator("textarea.comment").fill(sid)
        target = export_from_page(page, tmp_path / "exported.csv")
        assert not errors, errors
        assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    with open(target, newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not any(cell.startswith(tuple("=+-@\t\r")) for cell in cells)
    verdicts = {v.sample_id: v for v in read_verdicts(target, packet, "Chef Ana")}
    assert set(verdicts) == set(ids[:6])
    assert all(verdicts[sid].comment == sid for sid in ids[:6])
