"""Config fields become MLflow params and nested metrics become metric names that MLflow accepts,
losing nothing but what MLflow cannot hold, and carrying no password of any URL."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.utils.validation import _validate_metric_name, _validate_param_name

from doughflow.config import ExperimentConfig
from doughflow.tracking.naming import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    epoch_metrics,
    flatten_params,
    param_value,
    redact,
    split_metrics,
)

names = st.text(alphabet=st.characters(categories=["L", "N"], include_characters="_-"), min_size=1, max_size=12)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.lists(st.integers(), max_size=4)
)
trees = st.recursive(
    st.dictionaries(names, leaves, max_size=4), lambda inner: st.dictionaries(names, inner, max_size=4), max_leaves=20
)


def leaf_paths(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(leaf_paths(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@settings(max_examples=60, deadline=None)
@given(trees)
def test_every_leaf_becomes_one_param_under_its_dotted_path(tree):
    params = flatten_params(tree)
    expected = leaf_paths(tree)
    assert set(params) == set(expected)
    for path, value in expected.items():
        _validate_param_name(path)
        if isinstance(value, str):
            assert params[path] == redact(value)
        else:
            assert json.loads(params[path]) == value  # nothing lost: the JSON reads back


def test_the_whole_config_fits_mlflows_limits():
    params = flatten_params(ExperimentConfig().model_dump(mode="json"))
    assert params["train.learning_rate"] == "0.003" and params["labels"] == json.dumps(ExperimentConfig().labels)
    assert params["tune.search_space.train.model.width.choices"] == "[16, 24, 32]"
    assert all(len(key) <= MAX_KEY and len(value) <= MAX_PARAM_VALUE for key, value in params.items())
    assert len(param_value("x" * 10_000)) == MAX_PARAM_VALUE


passwords = st.text(
    alphabet=st.characters(categories=["L", "N", "P", "S"], exclude_characters="@/ \t\n"), min_size=1, max_size=20
)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["postgresql", "postgresql+psycopg2", "http", "https", "s3", "redis"]),
    names,
    passwords,
    st.text(max_size=10),
)
def test_no_url_password_survives(scheme, user, password, around):
    url = f"{scheme}://{user}:{password}@db.example:5432/optuna"
    redacted = redact(f"{around} {url} {around}")
    assert f"{scheme}://{user}:***@db.example:5432/optuna" in redacted
    assert f":{password}@" not in redacted
    assert redact("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"  # nothing to hide


def test_metrics_per_split_and_label_have_names_mlflow_takes():
    counts = {
        "n": 90,
        "mae": 0.25,
        "exact_count_accuracy": 0.9,
        "image_exact_accuracy": 0.6,
        "per_topping": {"olive": {"mae": 0.5, "exact_count_accuracy": 0.8}},
    }
    classes = {
        "accuracy": 0.75,
        "macro_f1": 0.7,
        "confusion_matrix": [[1, 0], [0, 1]],
        "per_class": {"cat": {"precision": 1.0, "recall": 0.5, "f1": 0.66, "support": 4}},
    }
    assert dict(split_metrics("test", counts)) == {
        "test/n": 90.0,
        "test/mae": 0.25,
        "test/exact_count_accuracy": 0.9,
        "test/image_exact_accuracy": 0.6,
        "test/mae/olive": 0.5,
        "test/exact_count_accuracy/olive": 0.8,
    }
    assert dict(split_metrics("val", classes)) == {
        "val/accuracy": 0.75,
        "val/macro_f1": 0.7,
        "val/precision/cat": 1.0,
        "val/recall/cat": 0.5,
        "val/f1/cat": 0.66,
        "val/support/cat": 4.0,
    }
    epoch = {"epoch": 3, "train_loss": 0.4, "lr": 1e-3, "seconds": 2.0, "global_step": 36, "val_mae": float("nan")}
    assert dict(epoch_metrics(epoch)) == {"train_loss": 0.4, "lr": 1e-3, "epoch_seconds": 2.0}
    for name, _ in [*split_metrics("test", counts), *split_metrics("val", classes), *epoch_metrics(epoch)]:
        _validate_metric_name(name)
