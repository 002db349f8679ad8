"""Study report and best config from a real (in-memory) Optuna study with complete, pruned and
failed trials: history and importance plots, the trials table, and a best.yaml that loads."""

from __future__ import annotations

import optuna
import pytest

from doughflow.config import ExperimentConfig, load_config
from doughflow.tuning.report import build_tune_report, counts, write_best_config
from doughflow.tuning.study import StudyRef

optuna.logging.set_verbosity(optuna.logging.WARNING)
State = optuna.trial.TrialState
SPACE = {
    "train.learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
    "train.model.width": optuna.distributions.CategoricalDistribution([8, 16]),
}


def _study(complete: int) -> optuna.Study:
    study = optuna.create_study(study_name="s", direction="maximize")
    for i in range(complete):
        params = {"train.learning_rate": 1e-4 * (3**i), "train.model.width": [8, 16][i % 2]}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=SPACE,
                value=0.5 + 0.1 * i,
                intermediate_values={1: 0.4 + 0.1 * i, 2: 0.5 + 0.1 * i},
                user_attrs={"run_id": f"run{i}"},
            )
        )
    study.add_trial(
        optuna.trial.create_trial(
            params={"train.learning_rate": 1e-4, "train.model.width": 8},
            distributions=SPACE,
            state=State.PRUNED,
            intermediate_values={1: 0.1},
            user_attrs={"pruned_after_epoch": 1},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            params={"train.learning_rate": 1e-2, "train.model.width": 8},
            distributions=SPACE,
            state=State.FAIL,
            user_attrs={"error": "loss is nan at epoch 1 step 3"},
        )
    )
    return study


def _config(tmp_path) -> ExperimentConfig:
    return load_config(
        None,
        [
            f"artifacts_dir={tmp_path}",
            "tune.enqueue=[]",
            "tune.search_space={train.learning_rate: {type: float, low: 1.0e-4, high: 0.01, log: true}}",
        ],
    )


@pytest.mark.parametrize("complete, importance", [(3, True), (1, False)])
def test_report_has_history_trials_table_and_importance_from_three_complete(tmp_path, complete, importance):
    study, config = _study(complete), _config(tmp_path)
    ref = StudyRef("sqlite:///x", "s", "maximize", "val_exact_count_accuracy")
    best = write_best_config(config, study, ref.metric, tmp_path)
    report = build_tune_report(config, study, ref, best, tmp_path)
    markdown = open(report.markdown).read()
    assert (tmp_path / "history.png").stat().st_size > 0 and "history.png" in report.figures
    assert ("importance.png" in report.figures) is importance and (tmp_path / "importance.png").exists() is importance
    assert f"| {complete} | PRUNED |" in markdown and "after epoch 1" in markdown
    assert "| FAIL |" in markdown and "loss is nan" in markdown
    assert f"{complete} complete, 1 pruned, 1 failed" in markdown
    assert counts(study) == {
        "n_complete": complete,
        "n_pruned": 1,
        "n_fail": 1,
        "n_running": 0,
        "n_waiting": 0,
        "n_trials": complete + 2,
    }


def test_best_yaml_is_the_whole_experiment_with_the_best_values(tmp_path):
    config = _config(tmp_path)
    best = write_best_config(config, _study(3), "val_exact_count_accuracy", tmp_path)
    assert best.trial == 2 and best.value == pytest.approx(0.7)
    loaded = load_config(best.path)
    assert loaded.train.learning_rate == pytest.approx(9e-4) and loaded.train.model.width == 8
    assert loaded.model_dump(exclude={"train"}) == config.model_dump(exclude={"train"})


def test_no_complete_trial_means_no_best_config(tmp_path):
    best = write_best_config(_config(tmp_path), _study(0), "val_exact_count_accuracy", tmp_path)
    assert best.path is None and not (tmp_path / "best.yaml").exists()
