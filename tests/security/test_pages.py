"""A whole training run on data whose every text column is hostile, then its pages in a real browser.

Every sample id carries a script payload and a mathtext trap, every customer id a formula or markup, the
recipe column more markup: ``flows.train`` must run through (ids are data, never paths or code), the
report, tuning-free bundle and review page must show them as text with nothing run or fetched (read in
chromium), the template must neutralise formula cells, no customer id may appear outside the run's data
folder (files, the registry, Prefect artifacts and logs), and ``report.include_images=false`` must ship a
bundle without example photos. One run, and one rerun that recomputes only the report and the bundle.
"""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from doughflow.cli.flow import run_flow_cli
from doughflow.privacy import is_pseudonym
from tests.support.browser import browser_page
from tests.support.configs import TINY_OVERRIDES
from tests.support.hostile import FORMULA_PAYLOADS, PWNED, SCRIPT_PAYLOADS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
REVIEW = [
    "review.gate.min_reviewed=6",
    "review.max_samples=24",
    "review.per_stratum=1",
    "review.worst_errors=4",
    "review.format_disagreements=3",
]
# Where customer ids may legitimately stay: the run's data, shared datasets, the key, and the Prefect
# result store (stage results pointing into data/, treated as the run's data).
PRIVATE = ("data", "datasets", ".keys", ".prefect-results")


def hostile_id(i: int) -> str:
    return f"{SCRIPT_PAYLOADS[i % len(SCRIPT_PAYLOADS)]} $\\frac{{$ #{i}"


def hostile_customer(original: str, i: int) -> str:
    return f"{FORMULA_PAYLOADS[i % len(FORMULA_PAYLOADS)]} <i>{original}</i>"


@pytest.fixture(scope="module")
def hostile_run(prefect_api, module_sandbox, tiny_source):
    """The tiny pizza set with every id, customer id and recipe replaced by hostile text; trained once,
    then rerun with report.include_images=false."""
    source = module_sandbox.inputs("hostile-pizzas")
    shards = sorted(tiny_source.glob("*.parquet"))
    tables = [pq.read_table(path) for path in shards]
    ids = [i for t in tables for i in t.column("sample_id").to_pylist()]
    id_map = {old: hostile_id(n) for n, old in enumerate(ids)}
    customers = sorted({c for t in tables for c in t.column("customer_id").to_pylist()})
    customer_map = {old: hostile_customer(old, n) for n, old in enumerate(customers)}
    for path, table in zip(shards, tables):
        table = table.set_column(
            table.schema.get_field_index("sample_id"),
            "sample_id",
            pa.array([id_map[i] for i in table.column("sample_id").to_pylist()], pa.string()),
        )
        table = table.set_column(
            table.schema.get_field_index("customer_id"),
            "customer_id",
            pa.array([customer_map[c] for c in table.column("customer_id").to_pylist()]),
        )
        table = table.set_column(
            table.schema.get_field_index("dup_of"),
            "dup_of",
            pa.array([id_map.get(d, d) for d in table.column("dup_of").to_pylist()]),
        )
        table = table.set_column(
            table.schema.get_field_index("recipe"), "recipe", pa.array([SCRIPT_PAYLOADS[0]] * table.num_rows)
        )
        pq.write_table(table, source / path.name)
    module_sandbox.seal()
    started = datetime.datetime.now(datetime.UTC)
    from flows.train import train

    argv = [
        "--config",
        str(ROOT / "configs" / "pizza.yaml"),
        *TINY_OVERRIDES,
        *REVIEW,
        f"data.source.url={source}",
        "data.max_count=3",  # the tiny set draws 0..3 per topping; the behavioural tests stay in that range
        "data.subsample.max_per_id=4",  # caps customers, so the report lists capped customers (as pseudonyms)
        f"artifacts_dir={module_sandbox.artifacts}",
    ]
    summary = run_flow_cli(train, argv=argv)
    without_images = run_flow_cli(train, argv=[*argv, "report.include_images=false"])
    return {
        "summary": summary,
        "without_images": without_images,
        "run": Path(summary["bundle"]).parent,
        # searched as the original ids inside the hostile ones: whatever escaping a leak went through
        # (&lt;i&gt;, JSON quotes), "cust-00012" survives it
        "customers": list(customer_map),
        "started": started,
        "artifacts": module_sandbox.artifacts,
    }


def open_in_browser(tmp_path, page_path: Path):
    """Every payload inert: nothing ran, nothing fetched; returns what the test reads from the page."""
    with browser_page(tmp_path) as (page, requests, errors):
        page.goto(page_path.as_uri())
        page.wait_for_timeout(300)
        assert page.evaluate(PWNED) is None
        assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
        assert not [e for e in errors if "Content Security Policy" not in e], errors
        return {
            "cells": page.eval_on_selector_all("td", "tds => tds.map(td => td.textContent)"),
            "codes": page.eval_on_selector_all("code", "codes => codes.map(c => c.textContent)"),
            "images": page.evaluate("document.images.length"),
        }


def test_report_shows_hostile_ids_as_text(hostile_run, tmp_path):
    report = hostile_run["run"] / "report" / "report.html"
    seen = open_in_browser(tmp_path, report)
    shown = [cell for cell in seen["cells"] if "$\\frac{$ #" in cell]
    assert shown, "the worst-examples table lists sample ids"
    assert all(cell.startswith(tuple(SCRIPT_PAYLOADS)) for cell in shown)
    assert (hostile_run["run"] / "report" / "worst_examples.png").exists()  # captions drew without mathtext


def test_review_page_shows_hostile_ids_as_text_and_template_is_inert(hostile_run, tmp_path):
    review = hostile_run["run"] / "review"
    packet = json.loads((review / "packet.json").read_text())
    seen = open_in_browser(tmp_path, review / "review.html")
    ids = [row["sample_id"] for row in packet["rows"]]
    assert [c for c in seen["codes"] if "#" in c and "$" in c] == ids
    with open(review / "verdicts_template.csv", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not any(cell.startswith(tuple("=+-@\t\r")) for cell in cells)
    groups = pq.read_table(review / "samples.parquet").column("customer_id").to_pylist()
    assert groups and all(is_pseudonym(g) for g in groups)


def searchable(path: Path) -> bytes:
    """A file's bytes, or for Parquet (compressed pages) the text of its string columns."""
    if path.suffix != ".parquet":
        return path.read_bytes()
    table = pq.read_table(path)
    strings = [name for name, kind in zip(table.column_names, table.schema.types) if pa.types.is_string(kind)]
    return json.dumps(table.select(strings).to_pylist()).encode()


def leaks_in(folder: Path, needles: list[str], private: tuple[str, ...] = ()) -> list[str]:
    found = []
    encoded = [(n, n.encode(), json.dumps(n)[1:-1].encode()) for n in needles]
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).parts
        if not path.is_file() or relative[0] in private or (len(relative) > 1 and relative[1] in private):
            continue
        data = searchable(path)
        found += [
            f"{path.relative_to(folder)}: {n[:40]!r}" for n, raw, quoted in encoded if raw in data or quoted in data
        ]
    return found


def test_no_customer_id_leaves_the_data_folder(hostile_run):
    """Files outside data/ (bundle, report, review packet, registry, logs on disk), Prefect artifacts and
    Prefect logs of the run: none holds a customer id. The same search finds them in data/ (it works)."""
    artifacts, customers = hostile_run["artifacts"], hostile_run["customers"]
    assert leaks_in(hostile_run["run"] / "data" / "review", customers)  # the real ids, kept in data/
    assert leaks_in(artifacts, customers, PRIVATE) == []
    report = (hostile_run["run"] / "report" / "report.md").read_text()
    assert "Examples: id_cap" in report and "| anon-" in report  # capped customers appear, as pseudonyms

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp

    with get_client(sync_client=True) as client:
        artifacts_text = json.dumps([a.model_dump(mode="json") for a in client.read_artifacts(limit=200)])
        logs = client.read_logs(
            log_filter=LogFilter(timestamp=LogFilterTimestamp(after_=hostile_run["started"])), limit=200
        )
        logs_text = "\n".join(log.message for log in logs)
    assert hostile_run["summary"]["run_id"] in artifacts_text  # the run's artifacts are there to be searched
    for customer in hostile_run["customers"]:
        assert customer not in artifacts_text and customer not in logs_text, customer


def test_a_bundle_without_example_photos(hostile_run):
    bundle = Path(hostile_run["without_images"]["bundle"])
    assert bundle != Path(hostile_run["summary"]["bundle"])
    files = set(json.loads((bundle / "manifest.json").read_text())["files"])
    photos = {"worst_examples.png", "error_analysis.png", "removed_pairs.png"}
    assert not files & photos and "loss_curve.png" in files
    assert photos & set(json.loads((Path(hostile_run["summary"]["bundle"]) / "manifest.json").read_text())["files"])
    assert "Example images are left out" in (bundle / "report.md").read_text()
