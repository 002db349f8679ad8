"""The new-recipes scenario from the README: one more label in the config draws (or fetches) only
the new topping's batch, reruns the stages that depend on the label map, and ships a bundle whose
label map and model outputs include the new topping."""

import json
from pathlib import Path

import onnx
import pyarrow.dataset as ds
import pytest

from doughflow.config import load_config
from doughflow.registry import load_runs
from tests.support.configs import TINY_OVERRIDES

BASE_MENU = ["pepperoni", "mushroom", "olive", "basil", "pepper"]
STAGES = {"fetch", "validate", "subsample", "split", "train", "evaluate", "export-onnx", "package"}


def _era_files(datasets: Path, era: str) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every shard of an era: unchanged means not redrawn, not rewritten."""
    (folder,) = [p for p in datasets.glob(f"pizza-{era}-*") if ".tmp-" not in p.name]
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.parquet")}


@pytest.mark.slow
def test_adding_a_topping_draws_only_its_batch_and_ships_it(prefect_api, tmp_path):
    from flows.prepare import prepare
    from flows.train import train

    common = TINY_OVERRIDES + [
        f"artifacts_dir={tmp_path}",
        "train.epochs=1",
        f"data.source.generator.base_menu=[{','.join(BASE_MENU)}]",
        "data.source.generator.new_recipe_images=150",
    ]
    before = prepare(config=load_config(None, common))
    datasets = tmp_path / "datasets"
    base_files = _era_files(datasets, "base")
    assert base_files and not list(datasets.glob("pizza-onion-*"))

    # The one line of config: onion joins the label map.
    summary = train(config=load_config(None, common + [f"labels=[{','.join(BASE_MENU)},onion]"]))

    assert _era_files(datasets, "base") == base_files  # the old photos were neither redrawn nor rewritten
    assert _era_files(datasets, "onion")
    (record,) = load_runs(tmp_path / "registry.sqlite")
    assert all(record.stage_states[stage] == "Completed" for stage in STAGES), record.stage_states
    assert record.data_fingerprint != before["fingerprint"]

    raw = json.loads((Path(summary["bundle"]).parent / "data" / "raw" / "manifest.json").read_text())
    assert raw["filled"] == {"count_onion": before["rows"]["fetched"]}  # every old photo counts 0 onions
    table = ds.dataset([s["path"] for s in raw["shards"]]).to_table(columns=["recipe", "count_onion"])
    onion_orders = [
        c
        for r, c in zip(table.column("recipe").to_pylist(), table.column("count_onion").to_pylist())
        if r.startswith("onion_")
    ]
    assert len(onion_orders) > 50 and sum(onion_orders) > len(onion_orders)  # the launch batch features onion

    bundle = Path(summary["bundle"])
    assert json.loads((bundle / "labels.json").read_text())["labels"] == BASE_MENU + ["onion"]
    output = onnx.load(str(bundle / "model.onnx")).graph.output[0]
    assert output.type.tensor_type.shape.dim[-1].dim_value == len(BASE_MENU) + 1
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert "onion" in json.dumps(metrics)
    from doughflow.cli.verify import main as verify

    assert verify([str(bundle)]) == 0
