"""flows.review on a small bundle: verdicts stored per run, the gate, the approval in manifest and card,
labelled export; the registry's verdicts table."""

import csv
import json

import pyarrow.parquet as pq
import pytest

from doughflow.cli.review import main as review_main
from doughflow.config import ExperimentConfig, ReviewGateConfig, dump_config
from doughflow.packaging.bundle import build_bundle, verify_bundle
from doughflow.registry import RunRecord, load_verdicts, record_run, record_verdicts
from doughflow.review.approval import review_gate, write_approval
from doughflow.review.packet import csv_columns, load_packet
from tests.support.review import LABELS, synthetic_packet

RUN = "pizza-test-run"


@pytest.fixture
def run_dir(tmp_path):
    """artifacts/<run>/{bundle,review} and a registry row, as a training run leaves them."""
    run = tmp_path / "artifacts" / RUN
    config = ExperimentConfig(labels=LABELS, review={"gate": {"min_correct_share": 0.75, "min_reviewed": 4}})
    build_bundle(
        run / "bundle",
        files={},
        documents={
            "config.yaml": dump_config(config),
            "model_card.md": "# Model card\n\n**Release status: RELEASED**\n",
        },
        run_id=RUN,
        data_fingerprint="f" * 64,
        config_hash=config.config_hash(),
    )
    synthetic_packet(run / "review", n=30)
    record_run(
        tmp_path / "artifacts" / "registry.sqlite",
        RunRecord(
            run_id=RUN,
            created_at="2026-11-27T10:00:00Z",
            experiment="pizza",
            status="released",
            config_hash="h",
            data_fingerprint="f" * 64,
            git_commit="c",
            bundle=str(run / "bundle"),
            total_seconds=1.0,
        ),
    )
    return run


def fill(path, packet, judgements):
    """judgements: list of (verdict, corrected) for the first rows; the rest stay unjudged."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=csv_columns(LABELS))
        writer.writeheader()
        for row, (verdict, corrected) in zip(packet["rows"], judgements):
            writer.writerow(
                {
                    "sample_id": row["sample_id"],
                    "verdict": verdict,
                    **{f"corrected_{k}": v for k, v in corrected.items()},
                }
            )
    return path


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_gate_needs_share_count_and_reviewers():
    gate = ReviewGateConfig(min_correct_share=0.9, min_reviewed=3, min_reviewers=2)
    figures = {"samples": 2, "reviewers": ["ana"], "share_correct": 0.5}
    approval = review_gate(figures, gate, reviewed_at="t")
    assert not approval["approved"] and len(approval["reasons"]) == 3
    assert review_gate({"samples": 3, "reviewers": ["a", "b"], "share_correct": 0.9}, gate, reviewed_at="t")["approved"]
    assert (
        "no verdicts yet"
        in review_gate({"samples": 0, "reviewers": [], "share_correct": None}, gate, reviewed_at="t")["reasons"]
    )


def test_import_gate_approval_and_reimport(run_dir, capsys):
    packet = load_packet(run_dir / "review")
    olive = packet["rows"][1]["predicted_rounded"]["olive"]
    first = fill(run_dir / "ana.csv", packet, [("correct", {}), ("wrong", {"olive": olive + 1})])
    assert review_main([str(run_dir / "bundle"), str(first), "--reviewer", "ana"]) == 3  # 2 reviewed < 4 needed
    result = last_json(capsys)
    assert result["imported"] == 2 and result["review"] == "not approved"
    assert result["agreement"]["per_topping"]["olive"]["share_correct"] == 0.5
    assert "2 samples reviewed, at least 4 needed" in result["reasons"][0]

    second = fill(run_dir / "bo.csv", packet, [("correct", {})] * 5)
    # a run folder works as the target, and a run id under --artifacts
    assert review_main([RUN, str(second), "--reviewer", "bo", "--artifacts", str(run_dir.parent)]) == 0
    result = last_json(capsys)
    assert result["approved"] and result["agreement"]["reviewers"] == ["ana", "bo"]
    assert result["agreement"]["verdicts"] == 7 and result["agreement"]["samples"] == 5
    assert result["agreement"]["share_correct"] == round(6 / 7, 4)

    bundle = run_dir / "bundle"
    assert verify_bundle(bundle) == []
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["review"]["status"] == "approved" and manifest["review"]["reviewers"] == ["ana", "bo"]
    card = (bundle / "model_card.md").read_text()
    assert card.count("## Human review") == 1 and "**Review: APPROVED** by ana, bo" in card
    assert "**Release status: RELEASED**" in card  # the automated status is left as it was

    # ana changes her mind on the first pizza: her verdict on it is replaced, her other one and bo's kept,
    # and the approval is withdrawn (5 of 7 correct < 75%)
    pepperoni = packet["rows"][0]["predicted_rounded"]["pepperoni"]
    fill(first, packet, [("wrong", {"pepperoni": pepperoni + 1})])
    assert review_main([str(run_dir), str(first), "--reviewer", "ana"]) == 3
    assert last_json(capsys)["agreement"]["share_correct"] == round(5 / 7, 4)
    stored = load_verdicts(run_dir.parent / "registry.sqlite", RUN)
    ana = {r["sample_id"]: r for r in stored if r["reviewer"] == "ana"}
    assert len(stored) == 7 and len(ana) == 2
    assert ana[packet["rows"][0]["sample_id"]]["corrected"] == {"pepperoni": pepperoni + 1}
    assert ana[packet["rows"][1]["sample_id"]]["corrected"] == {"olive": olive + 1}
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["review"]["status"] == "not approved" and verify_bundle(bundle) == []
    assert (bundle / "model_card.md").read_text().count("## Human review") == 1


def test_bad_file_is_refused_with_rows_and_nothing_stored(run_dir, capsys):
    path = run_dir / "bad.csv"
    path.write_text("sample_id,verdict,corrected_olive\npz-9999999,correct,\n")
    assert review_main([str(run_dir), str(path)]) == 2
    captured = capsys.readouterr()
    assert "row 2 (sample_id pz-9999999): unknown sample_id" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["ok"] is False
    assert load_verdicts(run_dir.parent / "registry.sqlite", RUN) == []
    assert review_main([str(run_dir / "nowhere")]) == 2


def test_a_bundle_config_that_cannot_run_is_refused_before_any_import(run_dir, capsys):
    (run_dir / "bundle" / "config.yaml").write_text(
        dump_config(ExperimentConfig(labels=LABELS, data={"adapter": "nope"}))
    )
    verdicts = fill(run_dir / "ana.csv", load_packet(run_dir / "review"), [("correct", {})])
    assert review_main([str(run_dir), str(verdicts), "--reviewer", "ana"]) == 2
    assert "data.adapter: unknown dataset adapter 'nope'" in capsys.readouterr().err
    assert load_verdicts(run_dir.parent / "registry.sqlite", RUN) == []


def test_unregistered_run_and_tampered_bundle_are_refused(run_dir, tmp_path):
    with pytest.raises(KeyError, match=r"unknown run id\(s\) \['other-run'\]"):
        record_verdicts(run_dir.parent / "registry.sqlite", "other-run", [])
    with pytest.raises(FileNotFoundError, match="no run registry"):
        record_verdicts(tmp_path / "other.sqlite", RUN, [])
    (run_dir / "bundle" / "model_card.md").write_text("edited by hand\n")
    with pytest.raises(ValueError, match="approval not written"):
        write_approval(run_dir / "bundle", {"status": "approved"})


def test_labelled_export_has_source_columns_and_origin(run_dir, capsys):
    packet = load_packet(run_dir / "review")
    rows = packet["rows"]
    olive = rows[1]["predicted_rounded"]["olive"]
    path = fill(run_dir / "ana.csv", packet, [("correct", {}), ("wrong", {"olive": olive + 1}), ("wrong", {})])
    out = run_dir / "corrections.parquet"
    review_main([str(run_dir), str(path), "--reviewer", "ana", "--export-labelled", str(out)])
    assert last_json(capsys)["labelled"]["rows"] == 2  # 'wrong' with no correction gives no label
    table = pq.read_table(out).to_pylist()
    by_origin = {row["origin_sample_id"]: row for row in table}
    corrected = by_origin[rows[1]["sample_id"]]
    assert corrected["sample_id"] == f"review-{rows[1]['sample_id']}"
    assert corrected["count_olive"] == olive + 1
    assert corrected["count_pepperoni"] == rows[1]["predicted_rounded"]["pepperoni"]
    assert (
        corrected["origin_run_id"] == RUN
        and corrected["origin_reviewer"] == "ana"
        and corrected["origin_verdict"] == "wrong"
    )
    confirmed = by_origin[rows[0]["sample_id"]]
    assert all(confirmed[f"count_{label}"] == rows[0]["predicted_rounded"][label] for label in LABELS)
    source = {r["sample_id"]: r for r in pq.read_table(run_dir / "review" / "samples.parquet").to_pylist()}
    assert confirmed["image"] == source[rows[0]["sample_id"]]["image"]
    assert confirmed["customer_id"] == source[rows[0]["sample_id"]]["customer_id"]
