"""A tuning study in a real MLflow store: one parent run, a nested run per trial whatever its end
(complete, pruned, failed), the parent found again when the study resumes, no trial logged twice."""

from __future__ import annotations

from mlflow import MlflowClient

from doughflow.tracking.mlflow_study import TrialRecord, close_study_run, log_trial, open_study_run

STORAGE = "postgresql://optuna:s3cret@db:5432/studies"


def test_study_parent_and_nested_trials(mlflow_uri, tmp_path):
    client = MlflowClient(tracking_uri=mlflow_uri)
    parent = open_study_run(
        mlflow_uri, "tuning", "pizza-study", STORAGE, {"tune.n_trials": "3"}, {"optuna.metric": "m"}
    )
    epochs = [{"epoch": 1, "train_loss": 1.0, "val_mae": 0.7}, {"epoch": 2, "train_loss": 0.5, "val_mae": 0.4}]
    trials = [
        TrialRecord(0, {"train.learning_rate": 0.003}, "complete", value=0.9, run_id="s-trial0000-x", epochs=epochs),
        TrialRecord(1, {"train.learning_rate": 0.1}, "pruned", pruned_after_epoch=1, epochs=epochs[:1]),
        TrialRecord(2, {"train.learning_rate": 0.5}, "fail", error="loss is nan at postgresql://u:pw@h/db"),
    ]
    nested = [log_trial(mlflow_uri, parent, trial) for trial in trials]
    assert log_trial(mlflow_uri, parent, trials[0]) == nested[0]  # a retried flow logs it once
    report = tmp_path / "report.html"
    report.write_text("<p>study</p>")
    close_study_run(
        mlflow_uri,
        parent,
        {"trial": 0, "value": 0.9, "params": {"train.learning_rate": 0.003}},
        {"n_complete": 1, "n_pruned": 1, "n_fail": 1},
        [str(report)],
    )

    study_run = client.get_run(parent)
    assert study_run.info.status == "FINISHED" and study_run.data.params == {"tune.n_trials": "3"}
    assert study_run.data.tags["doughflow.study_storage"] == "postgresql://optuna:***@db:5432/studies"
    assert study_run.data.metrics["best_objective"] == 0.9 and study_run.data.metrics["n_pruned"] == 1
    assert study_run.data.tags["best.train.learning_rate"] == "0.003"
    assert [a.path for a in client.list_artifacts(parent)] == ["report.html"]
    children = {
        r.data.tags["doughflow.trial"]: r
        for r in client.search_runs(
            [study_run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"
        )
    }
    assert sorted(children) == ["0", "1", "2"]
    assert [(c.data.tags["optuna.state"], c.info.status) for _, c in sorted(children.items())] == [
        ("COMPLETE", "FINISHED"),
        ("PRUNED", "FINISHED"),
        ("FAIL", "FAILED"),
    ]
    assert (
        children["0"].data.params == {"train.learning_rate": "0.003"} and children["0"].data.metrics["objective"] == 0.9
    )
    assert [m.step for m in client.get_metric_history(children["0"].info.run_id, "val_mae")] == [1, 2]
    assert children["1"].data.metrics["pruned_after_epoch"] == 1 and "objective" not in children["1"].data.metrics
    assert children["2"].data.tags["error"] == "loss is nan at postgresql://u:***@h/db"

    # The study resumes (a rerun of flows.tune): the same parent, running again, its params kept.
    again = open_study_run(mlflow_uri, "tuning", "pizza-study", STORAGE, {"tune.n_trials": "6"}, {})
    assert again == parent and client.get_run(parent).info.status == "RUNNING"
    assert client.get_run(parent).data.params == {"tune.n_trials": "3"}
    other = open_study_run(mlflow_uri, "tuning", "pizza-study", "sqlite:////elsewhere.db", {}, {})
    assert other != parent  # same name, another storage: another study
