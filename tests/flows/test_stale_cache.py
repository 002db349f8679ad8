"""A cached stage whose files were deleted (someone cleaned an old run's folder) is recomputed,
not served: later stages must never get paths to nothing."""

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from doughflow.config import load_config
from tests.support.configs import TINY_OVERRIDES


@pytest.mark.slow
def test_deleting_a_finished_run_folder_makes_the_next_run_recompute(prefect_api, tmp_path):
    from flows.prepare import prepare

    config = load_config(None, TINY_OVERRIDES + [f"artifacts_dir={tmp_path}"])
    first = prepare(config=config)
    shutil.rmtree(Path(first["output"]).parents[1])  # the first run's folder, whose files the cache names

    healed = prepare(config=config)
    splits = sorted(Path(healed["output"]).rglob("*.parquet"))
    assert (
        splits
        and sum(pq.read_metadata(p).num_rows for p in splits)
        == first["rows"]["split_train"] + first["rows"]["split_val"] + first["rows"]["split_test"]
    )
    assert healed["fingerprint"] == first["fingerprint"] and healed["rows"] == first["rows"]
    again = prepare(config=config)  # the recomputed generation is the cache from now on:
    assert not Path(again["output"]).exists() and again["rows"] == first["rows"]  # nothing new written
