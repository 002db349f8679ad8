"""A text corpus through `flows.prepare` with configs/text_dedup.yaml: person records as CSV, no image, no
labels, no groups; exact and near-dup on the text with the default settings, the split by component."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from doughflow.cli.flow import run_flow_cli
from doughflow.data.synthetic.records import RecordCorpusSpec, generate_records

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_text_records_through_the_prepare_flow(prefect_api, tmp_path, capsys):
    from flows.prepare import prepare

    source = tmp_path / "people"
    generate_records(RecordCorpusSpec(rows=1200), source, 600, fmt="csv", workers=1)
    argv = [
        "--config",
        str(ROOT / "configs" / "text_dedup.yaml"),
        f"data.source.url={source}",
        f"artifacts_dir={tmp_path / 'artifacts'}",
        "data.rows_per_shard=400",
    ]
    run_flow_cli(prepare, argv=argv, trains=False)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = summary["rows"]
    assert rows["fetched"] == rows["valid"] == 1200 and rows["quarantined"] == 0
    assert rows["exact_dedup"] < 1200 and rows["near_dup"] < rows["exact_dedup"]
    assert rows["split_train"] + rows["split_val"] + rows["split_test"] == rows["write"]

    report = json.loads(Path(summary["subsample_report"]).read_text())
    assert report["lsh"]["shingle"] == "char 3-grams" and report["lsh"]["threshold"] == 0.7
    assert "median text" in report["lsh"]["chosen"]
    truth = report["truth"]
    assert truth["recall"] >= 0.85 and truth["precision"] >= 0.9, truth
    removed = pq.read_table(summary["removed"]).to_pandas()
    assert {"exact_duplicate", "near_duplicate"} <= set(removed["reason"])
    assert (removed["kept_id"] != "").all() and removed["id"].str.startswith("r-").all()

    where: dict[str, set] = {}  # no near-dup component straddles splits
    for name in ("train", "val", "test"):
        for path in sorted((Path(summary["output"]) / name).glob("*.parquet")):
            for group in pq.read_table(path, columns=["_dup_group"]).column("_dup_group").to_pylist():
                if group:
                    where.setdefault(group, set()).add(name)
    assert where and all(len(splits) == 1 for splits in where.values())
