"""Runs land in the registry with their stage durations, and flows.compare shows what differed."""

import json

import pytest

from doughflow.config import load_config
from doughflow.registry import load_runs
from tests.conftest import TINY_OVERRIDES


@pytest.mark.slow
def test_two_runs_are_recorded_and_compared(prefect_api, tmp_path, capsys):
    from flows.compare import main as compare
    from flows.train import train

    summaries = [train(config=load_config(None, TINY_OVERRIDES + [f"artifacts_dir={tmp_path}", f"train.epochs={epochs}"]))
                 for epochs in (1, 2)]
    runs = load_runs(tmp_path / "registry.sqlite")
    assert [r.run_id for r in runs] == [s["run_id"] for s in summaries]
    for run in runs:
        assert run.status == "released" and len(run.data_fingerprint) == 64 and run.bundle
        assert {"fetch", "train", "evaluate", "package"} <= set(run.stage_seconds)
        assert run.stage_seconds["train"] > 0
    assert runs[0].data_fingerprint == runs[1].data_fingerprint

    capsys.readouterr()
    result = compare(["--registry", str(tmp_path / "registry.sqlite"), "--plot", str(tmp_path / "cmp.png")])
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1]) == result
    assert result["config_differences"] == ["train.epochs"]
    assert "| train.epochs | 1 | 2 |" in printed
    assert (tmp_path / "cmp.png").stat().st_size > 0
