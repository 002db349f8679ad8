"""What a report says beyond its metrics: the model and its size, the learning rate it followed, and the
change since the experiment's previous run in the registry."""

from __future__ import annotations

import pytest

from doughflow.config import load_config
from doughflow.registry import RunRecord, previous_run, record_run
from doughflow.reporting.run_facts import hardware_line, learning_rate_curve, model_facts, previous_run_section
from doughflow.training.inference import make_model


def _record(run_id: str, created: str, experiment: str = "pizza", accuracy: float = 0.9) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        created_at=created,
        experiment=experiment,
        status="released",
        config_hash="h1",
        data_fingerprint="f" * 64,
        git_commit="c" * 40,
        bundle=None,
        total_seconds=60.0,
        metrics={
            "test_exact_count_accuracy": accuracy,
            "test_image_exact_accuracy": 0.5,
            "test_mae": 0.2,
            "train_seconds": 100.0,
        },
    )


def test_the_previous_run_is_the_newest_other_run_of_the_experiment(tmp_path):
    registry = tmp_path / "registry.sqlite"
    assert previous_run(registry, "pizza", "now") is None  # no registry yet
    record_run(registry, _record("old", "2026-01-01T00:00:00Z"))
    record_run(registry, _record("newer", "2026-01-02T00:00:00Z", accuracy=0.95))
    record_run(registry, _record("other", "2026-01-03T00:00:00Z", experiment="shapes"))
    record_run(registry, _record("now", "2026-01-04T00:00:00Z"))  # a rerun of the run itself
    assert previous_run(registry, "pizza", "now").run_id == "newer"
    text = previous_run_section(
        registry,
        "pizza",
        "now",
        {
            "test_exact_count_accuracy": 0.975,
            "test_image_exact_accuracy": 0.5,
            "test_mae": 0.15,
            "train_seconds": 80.0,
            "data_fingerprint": "f" * 64,
            "config_hash": "h2",
        },
        "count",
    )
    assert "Against `newer`" in text and "same data, config changed" in text
    assert "| test exact-count accuracy | 97.5 % | 95.0 % | +2.50 points |" in text
    assert (
        "| test MAE (counts) | 0.150 | 0.200 | -0.0500 |" in text
        and "| training time | 80.0 s | 100 s | -20.0 s |" in text
    )
    assert "python -m flows.compare newer now" in text
    assert "first" in previous_run_section(registry, "fresh", "x", {}, "count")


def test_model_facts_count_the_parameters_of_the_trained_architecture():
    config = load_config(None, ["train.model.width=8"])
    text, parameters = model_facts(config, "count")
    assert parameters == sum(p.numel() for p in make_model(config.train, len(config.labels), "count").parameters())
    assert "`density_cnn` (DensityCounter), width 8" in text and "Conv2d" in text and "5 outputs" in text
    assert "cpu, fp32" in hardware_line(config.train) and "logical cores" in hardware_line(config.train)


def test_the_learning_rate_curve_meets_the_rates_the_trainer_recorded():
    config = load_config(None, ["train.epochs=4", "train.warmup_steps=3", "train.learning_rate=0.01"])
    from doughflow.training.schedule import lr_factor

    factor = lr_factor(config.train, 40)
    # as the trainer records them: the rate after each epoch's last update, here scaled x2 at run time
    history = {"epoch": [{"epoch": e, "global_step": 10 * e, "lr": 0.02 * factor(10 * e)} for e in (1, 2)]}
    steps, rates = learning_rate_curve(config.train, history)
    assert steps == list(range(1, 21))
    assert rates[10] == pytest.approx(0.02 * factor(10)) and rates[0] == pytest.approx(0.02 * factor(0))
    assert learning_rate_curve(config.train, {"epoch": []}) == ([], [])
