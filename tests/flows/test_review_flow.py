"""Round trip on a real tiny run: packet -> verdicts filled in by a script (and in the browser) ->
flows.review import -> review gate -> approval visible in flows.verify -> corrections as the next
run's extra source."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from doughflow.cli.flow import run_flow_cli
from doughflow.config import load_config
from doughflow.packaging.bundle import verify_bundle
from doughflow.privacy import is_pseudonym
from doughflow.review.packet import load_packet
from doughflow.runs import RunPaths
from doughflow.stages.fetch import fetch
from tests.support.browser import browser_page
from tests.support.configs import TINY_OVERRIDES
from tests.support.review import export_from_page, fill_in_page, read_csv

ROOT = Path(__file__).resolve().parents[2]
REVIEW = [
    "review.gate.min_reviewed=6",
    "review.gate.min_correct_share=0.8",
    "review.max_samples=24",
    "review.per_stratum=1",
    "review.worst_errors=4",
    "review.format_disagreements=3",
]


@pytest.fixture(scope="module")
def tiny_run(prefect_api, tmp_path_factory):
    from flows.train import train

    artifacts = tmp_path_factory.mktemp("review_run")
    argv = ["--config", str(ROOT / "configs" / "pizza.yaml"), *TINY_OVERRIDES, *REVIEW, f"artifacts_dir={artifacts}"]
    summary = run_flow_cli(train, argv=argv)
    return Path(summary["bundle"]).parent


def run_cli(module, *args):
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1]), result


@pytest.mark.slow
def test_review_round_trip(tiny_run, tmp_path, capsys):
    from doughflow.cli.verify import main as verify

    def verify_json(*args):
        code = verify([str(bundle), *args])
        out = capsys.readouterr().out
        return code, json.loads(out.strip().splitlines()[-1]), out

    review_dir, bundle = tiny_run / "review", tiny_run / "bundle"
    packet = load_packet(review_dir)
    reasons = " | ".join("; ".join(row["reasons"]) for row in packet["rows"])
    assert 6 <= len(packet["rows"]) <= 24
    for kind in ("stratum pepperoni=0", "worst error", "formats disagree"):
        assert kind in reasons, kind
    assert "review" not in json.loads((bundle / "manifest.json").read_text())
    code, verified, _ = verify_json("--require-review")
    assert code == 4 and verified["review"]["status"] == "not reviewed"

    # a script fills in the template: every pizza correct except one, whose olives it corrects
    template = read_csv(review_dir / "verdicts_template.csv")
    wrong = template[0]
    for row in template:
        row["verdict"] = "correct"
    wrong["verdict"], wrong["corrected_olive"], wrong["comment"] = (
        "wrong",
        str(int(wrong["predicted_olive"]) + 1),
        "one more olive",
    )
    filled = tmp_path / "verdicts.csv"
    with open(filled, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(template[0]))
        writer.writeheader()
        writer.writerows(template)

    labelled = tmp_path / "corrections.parquet"
    code, result, proc = run_cli(
        "flows.review", tiny_run, filled, "--reviewer", "Chef Ana", "--export-labelled", labelled
    )
    assert code == 0, proc.stderr
    n = len(template)
    assert result["approved"] and result["imported"] == n
    assert result["agreement"]["share_correct"] == round((n - 1) / n, 4)
    assert result["agreement"]["per_topping"]["olive"]["share_correct"] == round((n - 1) / n, 4)
    assert result["agreement"]["per_topping"]["pepperoni"]["share_correct"] == 1.0
    assert "judged correct:" in proc.stdout and "olive:" in proc.stdout

    assert verify_bundle(bundle) == []
    code, verified, out = verify_json("--require-review")
    assert code == 0, out
    assert verified["ok"] and verified["review"]["approved"] and verified["review"]["reviewers"] == ["Chef Ana"]
    assert "review: approved by Chef Ana" in out
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["release"]["status"] == "released" and manifest["review"]["figures"]["samples"] == n
    card = (bundle / "model_card.md").read_text()
    assert "## Human review" in card and "**Review: APPROVED** by Chef Ana" in card

    # the corrections become the next run's extra source, their origin kept
    rows = pq.read_table(labelled).to_pylist()
    assert len(rows) == n
    # the packet's samples carry pseudonyms; the export, training data for the next split, the real ids
    assert all(is_pseudonym(g) for g in pq.read_table(review_dir / "samples.parquet").column("customer_id").to_pylist())
    assert all(r["customer_id"].startswith("cust-") for r in rows)
    fixed = next(r for r in rows if r["origin_sample_id"] == wrong["sample_id"])
    assert fixed["count_olive"] == int(wrong["predicted_olive"]) + 1 and fixed["origin_reviewer"] == "Chef Ana"
    config = load_config(
        bundle / "config.yaml", [f"artifacts_dir={tmp_path / 'next'}", f"data.extra_sources=[{labelled}]"]
    )
    manifest = fetch(config, RunPaths(tmp_path / "next", "next-run"))
    extra_ids = pq.read_table(manifest.shards[-1].path).column("sample_id").to_pylist()
    assert f"review-{wrong['sample_id']}" in extra_ids
    main_ids = {i for s in manifest.shards[:-1] for i in pq.read_table(s.path).column("sample_id").to_pylist()}
    assert wrong["sample_id"] not in main_ids  # superseded by its correction


@pytest.mark.slow
def test_real_packet_in_browser(tiny_run, tmp_path):
    review_dir = tiny_run / "review"
    packet = load_packet(review_dir)
    first = packet["rows"][0]
    with browser_page(tmp_path) as (page, requests, errors):
        page.goto((review_dir / "review.html").as_uri())
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        fill_in_page(page, {first["sample_id"]: ("wrong", {"basil": 3}, "basil is hiding")}, reviewer="Bo")
        exported = read_csv(export_from_page(page, tmp_path / "bo.csv"))
        assert not errors, errors
        assert all(url.startswith(("file:", "data:", "blob:")) for url in requests), requests
    assert [row["sample_id"] for row in exported] == [row["sample_id"] for row in packet["rows"]]
    assert exported[0]["verdict"] == "wrong" and exported[0]["corrected_basil"] == "3"
    assert all(row["verdict"] == "" for row in exported[1:])


@pytest.mark.slow
def test_cached_rerun_leaves_the_packet_beside_the_cached_bundle(tiny_run, tmp_path, capsys):
    """Every stage cached: the bundle is the first run's, so its packet stays where it is, untouched."""
    from flows.train import train

    packet = tiny_run / "review" / "packet.json"
    before = packet.stat().st_mtime_ns
    argv = [
        "--config",
        str(ROOT / "configs" / "pizza.yaml"),
        *TINY_OVERRIDES,
        *REVIEW,
        f"artifacts_dir={tiny_run.parent}",
    ]
    summary = run_flow_cli(train, argv=argv)
    assert Path(summary["bundle"]).parent == tiny_run and summary["run_id"] != tiny_run.name
    assert packet.stat().st_mtime_ns == before
    assert not (tiny_run.parent / summary["run_id"] / "review").exists()
