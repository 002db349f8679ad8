import pytest

from doughflow.compare import comparison_markdown, comparison_plot, config_differences, flatten
from doughflow.registry import RunRecord, load_runs, record_run


def _record(run_id: str, created: str, epochs: int, accuracy: float) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        created_at=created,
        experiment="pizza",
        status="completed",
        config_hash=f"h{epochs}",
        data_fingerprint="f" * 64,
        git_commit="c" * 40,
        bundle=f"/b/{run_id}",
        total_seconds=12.5,
        config={"train": {"epochs": epochs, "seed": 1}, "labels": ["olive"]},
        metrics={"test_exact_count_accuracy": accuracy, "train_seconds": 3.0},
        gates={"onnx": {"passed": True}},
        stage_seconds={"train": 2.0, "fetch": 0.5},
    )


def test_records_round_trip_in_order(tmp_path):
    registry = tmp_path / "registry.sqlite"
    for i, (epochs, acc) in enumerate([(1, 0.5), (2, 0.7), (3, 0.9)]):
        record_run(registry, _record(f"r{i}", f"2026-11-27T10:0{i}:00Z", epochs, acc))
    assert [r.run_id for r in load_runs(registry, last=2)] == ["r1", "r2"]
    picked = load_runs(registry, ["r2", "r0"])
    assert [r.run_id for r in picked] == ["r2", "r0"]
    assert picked[0].metrics["test_exact_count_accuracy"] == 0.9 and picked[0].stage_seconds["train"] == 2.0
    record_run(registry, _record("r0", "2026-11-27T10:00:00Z", 1, 0.55))  # a rerun updates its row
    assert load_runs(registry, ["r0"])[0].metrics["test_exact_count_accuracy"] == 0.55
    with pytest.raises(KeyError, match="unknown run id"):
        load_runs(registry, ["nope"])
    with pytest.raises(FileNotFoundError, match="no run registry"):
        load_runs(tmp_path / "missing.sqlite")


def test_comparison_shows_only_differences(tmp_path):
    runs = [_record("a", "t1", 1, 0.5), _record("b", "t2", 4, 0.8)]
    assert flatten({"a": {"b": 1}, "c": 2}) == {"a.b": 1, "c": 2}
    assert config_differences(runs) == {"train.epochs": [1, 4]}
    text = comparison_markdown(runs)
    assert "| train.epochs | 1 | 4 |" in text and "test_exact_count_accuracy" in text and "train.seed" not in text
    plot = comparison_plot(runs, tmp_path / "cmp.png", ["test_exact_count_accuracy"])
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_a_registry_from_before_stage_states_is_migrated_in_place(tmp_path):
    import sqlite3

    registry = tmp_path / "old.sqlite"
    with sqlite3.connect(registry) as old:  # the first released schema: no stage_states column
        old.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, experiment TEXT NOT NULL,"
            " status TEXT NOT NULL, config_hash TEXT NOT NULL, data_fingerprint TEXT NOT NULL,"
            " git_commit TEXT NOT NULL, bundle TEXT, total_seconds REAL, config TEXT NOT NULL,"
            " metrics TEXT NOT NULL, gates TEXT NOT NULL, stage_seconds TEXT NOT NULL)"
        )
        old.execute(
            "INSERT INTO runs VALUES ('old', '2026-01-01T00:00:00Z', 'pizza', 'released', 'h', 'f', 'c', NULL,"
            " 1.0, '{}', '{\"mae\": 0.2}', '{}', '{}')"
        )
    (migrated,) = load_runs(registry)
    assert migrated.run_id == "old" and migrated.metrics == {"mae": 0.2} and migrated.stage_states == {}
    assert migrated.recipe == {}  # the recipe column, added later still, too
    record_run(registry, _record("new", "2026-11-27T10:00:00Z", 1, 0.5))
    assert [r.run_id for r in load_runs(registry)] == ["old", "new"]


def test_comparison_shows_the_hardware_and_recipe_of_each_run(tmp_path):
    registry = tmp_path / "registry.sqlite"
    laptop = _record("laptop", "t1", 16, 0.97)
    laptop.config["train"].update(micro_batch_size=64, gradient_accumulation_steps=1, learning_rate=0.003)
    laptop.recipe = {
        "world_size": 1,
        "device": "cpu",
        "global_batch_size": 64,
        "micro_batch_size": 64,
        "gradient_accumulation_steps": 1,
        "micro_batch_method": "configured",
        "effective_learning_rate": 0.003,
    }
    cluster = _record("cluster", "t2", 16, 0.98)
    cluster.config["train"].update(micro_batch_size="auto", learning_rate=0.003)
    cluster.recipe = {
        "world_size": 8,
        "device": "cuda",
        "global_batch_size": 512,
        "micro_batch_size": 64,
        "gradient_accumulation_steps": 1,
        "micro_batch_method": "gpu probe",
        "effective_learning_rate": 0.024,
    }
    old = _record("old", "t0", 16, 0.9)  # recorded before recipes were: read from its config
    old.config["train"].update(
        micro_batch_size=32,
        gradient_accumulation_steps=2,
        learning_rate=0.001,
        launcher={"num_processes": 2, "num_nodes": 1},
    )
    old.recipe = {}
    for record in (old, laptop, cluster):
        record_run(registry, record)
    runs = load_runs(registry, ["old", "laptop", "cluster"])
    assert runs[2].recipe["device"] == "cuda"
    text = comparison_markdown(runs)
    for row in (
        "| world size | 2 | 1 | 8 |",
        "| device | — | cpu | cuda |",
        "| global batch | 128 | 64 | 512 |",
        "| micro batch x accumulation | 32 x 2 | 64 x 1 | 64 x 1 (gpu probe) |",
        "| effective learning rate | 0.00100 | 0.00300 | 0.0240 |",
    ):
        assert row in text, row
