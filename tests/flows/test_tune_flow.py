"""flows.tune end to end on tiny data: trials are sub-flows that reuse the cached data stages, a
bad trial is pruned from its epoch-1 validation metric, the study lives in SQLite and a rerun
resumes it, and the best config, report and JSON line come out."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from doughflow.config import load_config
from tests.support.configs import TINY_OVERRIDES, TINY_TUNE_OVERRIDES

DATA_STAGES = {"fetch", "validate", "subsample", "split"}


def _trial_data_stage_states() -> dict[str, dict[str, str]]:
    """Prefect's own record: the state of each data stage inside each trial's prepare-data sub-flow."""
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            flow_runs = await client.read_flow_runs(limit=200)
            task_runs = await client.read_task_runs(limit=200)
        trial_names = {run.id: run.name for run in flow_runs if run.name.startswith("trial-")}
        parent_flow = {run.id: run.flow_run_id for run in task_runs}
        prepare = {
            run.id: trial_names[parent_flow[run.parent_task_run_id]]
            for run in flow_runs
            if run.parent_task_run_id and parent_flow.get(run.parent_task_run_id) in trial_names
        }
        states: dict[str, dict[str, str]] = {}
        for run in task_runs:
            stage = run.name.rsplit("-", 1)[0]
            if run.flow_run_id in prepare and stage in DATA_STAGES:
                states.setdefault(prepare[run.flow_run_id], {})[stage] = run.state.name
        return states

    deadline = time.time() + 60  # task runs reach the API asynchronously
    while True:
        states = asyncio.run(read())
        if all(len(states.get(f"trial-{n}", {})) == len(DATA_STAGES) for n in range(2)) or time.time() > deadline:
            return states
        time.sleep(1)


@pytest.mark.slow
def test_tune_prunes_reuses_cached_data_resumes_and_writes_best_config(prefect_api, tmp_path, capsys):
    from doughflow.cli.flow import run_flow_cli
    from flows.tune import tune

    overrides = TINY_OVERRIDES + TINY_TUNE_OVERRIDES + [f"artifacts_dir={tmp_path}", "tracking.mlflow.enabled=true"]
    first = tune(config=load_config(None, overrides + ["tune.n_trials=1"]))
    assert (first["n_complete"], first["n_pruned"], first["n_trials"]) == (1, 0, 1)
    assert first["best_trial"] == 0 and first["best_params"] == {"train.learning_rate": 0.01, "train.model.width": 8}

    capsys.readouterr()
    second = run_flow_cli(tune, argv=[*overrides, "tune.n_trials=2"])  # the same study, resumed to 2 trials
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(second, default=str))
    assert (second["n_complete"], second["n_pruned"], second["n_trials"]) == (1, 1, 2)

    database = tmp_path / "tune" / "pizza.sqlite3"
    assert second["storage"] == f"sqlite:///{database}"
    with sqlite3.connect(database) as db:
        stored = dict(db.execute("SELECT number, state FROM trials").fetchall())
    assert stored == {0: "COMPLETE", 1: "PRUNED"}

    best = Path(second["best_config"])
    best_config = load_config(best)  # what `python -m flows.train --config best.yaml` loads
    assert best_config.train.learning_rate == second["best_params"]["train.learning_rate"]
    assert best_config.train.model.width == second["best_params"]["train.model.width"]
    assert best_config.data == load_config(None, overrides).data
    assert yaml.safe_load(best.read_text())["name"] == "pizza"

    report = Path(second["report"])
    markdown = report.with_suffix(".md").read_text()
    assert report.exists() and (report.parent / "history.png").stat().st_size > 0
    assert "![optimisation history](history.png)" in markdown and "data:image/png;base64," in report.read_text()
    assert "| 1 | PRUNED |" in markdown and "after epoch 1" in markdown

    from prefect.client.orchestration import get_client

    async def artifact_keys():
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    assert "pizza-tune-report" in asyncio.run(artifact_keys())  # the study report, as a Prefect markdown artifact

    states = _trial_data_stage_states()
    assert set(states["trial-0"].values()) <= {"Completed", "Cached"}, states
    # The second trial (a new invocation, resuming the study) got the data stages from Prefect's cache.
    assert states["trial-1"] == {stage: "Cached" for stage in DATA_STAGES}, states
    # a pruned trial stopped after epoch 1 of 2, and nothing bundled or evaluated
    run_dirs = [p for p in tmp_path.iterdir() if "-trial0001-" in p.name]
    assert len(run_dirs) == 1 and not (run_dirs[0] / "bundle").exists()
    history = json.loads((run_dirs[0] / "train" / "history.json").read_text())
    assert [e["epoch"] for e in history["epoch"]] == [1]

    # MLflow: the study one parent run (reopened by the resumed invocation), each trial nested under it
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("pizza").experiment_id
    runs = client.search_runs([experiment])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["best_objective"] == pytest.approx(second["best_value"])
    trials = sorted(
        (r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id),
        key=lambda r: int(r.data.tags["doughflow.trial"]),
    )
    assert [r.data.tags["optuna.state"] for r in trials] == ["COMPLETE", "PRUNED"]
    assert trials[1].data.metrics["pruned_after_epoch"] == 1 and trials[1].data.params["train.learning_rate"] == "1e-06"
    assert [m.step for m in client.get_metric_history(trials[0].info.run_id, "val_mae")] == [1, 2]
