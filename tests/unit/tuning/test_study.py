"""Study storage: SQLite beside the artifacts by default, resumed by a rerun (trials left count the
finished ones), baselines enqueued once, a direction clash refused, and outcomes told as states."""

from __future__ import annotations

import math

import optuna
import pytest

from doughflow.config import load_config
from doughflow.tuning.study import ask, load_study, make_pruner, open_study, storage_url, tell, trials_left

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(tmp_path, *extra):
    return load_config(None, [f"artifacts_dir={tmp_path}", "tune.pruner.kind=none", *extra])


def test_default_storage_is_sqlite_under_artifacts_and_a_url_passes_through(tmp_path):
    assert storage_url(_config(tmp_path)) == f"sqlite:///{tmp_path.resolve()}/tune/pizza.sqlite3"
    assert (tmp_path / "tune").is_dir()
    url = "postgresql://tuner:pw@db:5432/optuna"
    assert storage_url(_config(tmp_path, f"tune.storage={url}", "tune.study_name=lr-sweep")) == url


def test_rerun_resumes_the_study_and_enqueues_the_baseline_once(tmp_path):
    config = _config(tmp_path, "tune.n_trials=3")
    ref = open_study(config)
    first = ask(ref, config.tune)
    assert first.params == config.tune.enqueue[0]  # the baseline runs first, with exactly its values
    assert tell(ref, first, {"state": "complete", "value": 0.5}) == "complete"
    second = ask(ref, config.tune)
    assert tell(ref, second, {"state": "pruned", "pruned_after_epoch": 1}) == "pruned"
    assert trials_left(ref, 3) == 1

    again = open_study(config)  # the same command again: same study, no second baseline
    assert again == ref and trials_left(again, 3) == 1 and trials_left(again, 5) == 3
    study = load_study(again)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert study.trials[1].user_attrs["pruned_after_epoch"] == 1


def test_a_trial_without_a_finite_value_is_failed_with_the_reason(tmp_path):
    config = _config(tmp_path)
    ref = open_study(config)
    plan = ask(ref, config.tune)
    assert tell(ref, plan, {"state": "complete", "value": math.nan}) == "fail"
    trial = load_study(ref).trials[0]
    assert trial.state.name == "FAIL" and "val_exact_count_accuracy is nan" in trial.user_attrs["error"]


def test_a_study_created_for_the_other_direction_is_refused(tmp_path):
    open_study(_config(tmp_path))
    with pytest.raises(ValueError, match="created to maximize"):
        open_study(_config(tmp_path, "tune.metric=val_mae", "tune.direction=minimize"))


def test_each_ask_draws_new_values_reproducibly(tmp_path):
    def draws(folder) -> list[dict]:
        config = _config(folder, "tune.enqueue=[]")
        ref = open_study(config)
        plans = []
        for _ in range(3):
            plans.append(ask(ref, config.tune))
            tell(ref, plans[-1], {"state": "complete", "value": 0.5})
        return [plan.params for plan in plans]

    first = draws(tmp_path / "a")
    assert len({tuple(sorted(p.items())) for p in first}) == 3  # not the same draw three times
    assert draws(tmp_path / "b") == first  # the same seed, the same study


@pytest.mark.parametrize("warmup, first_prunable_epoch", [(0, 1), (2, 3)])
def test_warmup_protects_exactly_the_first_epochs(tmp_path, warmup, first_prunable_epoch):
    config = _config(
        tmp_path, "tune.pruner.kind=median", "tune.pruner.n_startup_trials=1", f"tune.pruner.n_warmup_steps={warmup}"
    )
    study = optuna.create_study(direction="maximize", pruner=make_pruner(config.tune))
    good = study.ask()
    for epoch in range(1, 5):
        good.report(0.9, epoch)
    study.tell(good, 0.9)
    bad = study.ask()
    pruned_at = None
    for epoch in range(1, 5):
        bad.report(0.1, epoch)
        if bad.should_prune():
            pruned_at = epoch
            break
    assert pruned_at == first_prunable_epoch
