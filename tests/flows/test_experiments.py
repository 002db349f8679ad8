"""Reruns reuse finished stages (Prefect cache keys on config sections and upstream data), runs
land in the registry with their stage durations and states, and flows.compare shows what differed."""

import json

import pytest

from doughflow.config import load_config
from doughflow.registry import load_runs
from tests.support.configs import DATA_STAGES, MODEL_STAGES, TINY_OVERRIDES


@pytest.mark.slow
def test_reruns_skip_finished_stages_and_runs_are_compared(prefect_api, tmp_path, capsys):
    from doughflow.cli.compare import main as compare
    from flows.train import train

    def run(epochs: int) -> dict:
        return train(config=load_config(None, TINY_OVERRIDES + [f"artifacts_dir={tmp_path}", f"train.epochs={epochs}"]))

    first, changed, same = run(1), run(2), run(2)
    runs = load_runs(tmp_path / "registry.sqlite")
    assert [r.run_id for r in runs] == [first["run_id"], changed["run_id"], same["run_id"]]
    states = [run.stage_states for run in runs]
    assert all(states[0][stage] == "Completed" for stage in DATA_STAGES | MODEL_STAGES)
    # A change in the training section reruns training and what follows, not the data stages...
    assert all(states[1][stage] == "Cached" for stage in DATA_STAGES), states[1]
    assert all(states[1][stage] == "Completed" for stage in MODEL_STAGES), states[1]
    # ...and a rerun with nothing changed skips every stage, reusing the earlier run's bundle.
    assert all(states[2].get(stage) == "Cached" for stage in DATA_STAGES | MODEL_STAGES), states[2]
    assert same["bundle"] == changed["bundle"] and same["metrics"] == changed["metrics"]
    assert runs[2].stage_seconds["train"] < 1.0 < runs[1].stage_seconds["train"]
    for record in runs:
        assert record.status == "released" and len(record.data_fingerprint) == 64 and record.bundle
    assert len({r.data_fingerprint for r in runs}) == 1

    capsys.readouterr()
    result = compare(
        [
            first["run_id"],
            changed["run_id"],
            "--registry",
            str(tmp_path / "registry.sqlite"),
            "--plot",
            str(tmp_path / "cmp.png"),
        ]
    )
    printed = capsys.readouterr().out
    assert json.loads(printed.strip().splitlines()[-1]) == result
    assert result["config_differences"] == ["train.epochs"]
    assert "| train.epochs | 1 | 2 |" in printed
    assert (tmp_path / "cmp.png").stat().st_size > 0
