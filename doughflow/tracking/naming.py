"""What doughflow's values become in MLflow: config fields as params, nested metrics as metric names,
and no credential in either.

MLflow keeps params as strings of at most 6,000 characters under keys of at most 250, and metrics as
floats under names of letters, digits and ``_ - . / space``. A config is a tree of about 220 leaves,
so each leaf becomes one param under its dotted path (``train.learning_rate``), as a ``key=value``
override would name it. URLs in a config (``tune.storage``, ``tracking.mlflow.uri``, a Dask address)
may carry a password (``postgresql://user:secret@host/db``); every string is redacted before it leaves,
since anyone who can read the tracking server would read it there.

Only the standard library: the names are plain data, tested without MLflow.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MAX_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
MAX_TAG_VALUE = 8000  # mlflow.utils.validation.MAX_TAG_VAL_LENGTH
TRUNCATED = "...(truncated)"

# scheme://user:password@ -> scheme://user:***@ (the user stays: it says which account, not how to be it)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]*)@")
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_\-./ ]")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def param_value(value: Any) -> str:
    """A leaf as MLflow keeps it: strings as they are, everything else as JSON; redacted and clipped."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return _clip(redact(text), MAX_PARAM_VALUE)


def flatten_params(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Every leaf of a nested mapping under its dotted path; an empty mapping is a leaf (``{}``)."""
    params: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            params.update(flatten_params(value, f"{path}."))
        else:
            params[_clip(path, MAX_KEY)] = param_value(value)
    return params


def metric_name(*parts: str) -> str:
    """``parts`` joined by ``/`` (MLflow's UI groups charts by the first part), outside characters as ``_``."""
    return _clip("/".join(_NOT_IN_A_NAME.sub("_", part) for part in parts if part), MAX_KEY)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (bools count as 0/1), else None."""
    if isinstance(value, (int, float)) and not (isinstance(value, float) and not math.isfinite(value)):
        return float(value)
    return None


def split_metrics(split: str, metrics: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """One split's final metrics: ``test/mae`` for a number, ``test/mae/olive`` for a label's (from
    ``per_topping`` or ``per_class``); lists (the confusion matrix) stay in metrics.json. The split leads
    with a slash, so the UI shows each split as a section, and the final ``val/mae`` (the kept model on
    the validation split) is not mixed into the per-epoch ``val_mae`` series the trainer logs."""
    for name, value in metrics.items():
        if name in ("per_topping", "per_class") and isinstance(value, dict):
            for label, per_label in value.items():
                for inner, number in per_label.items():
                    if (number := finite_number(number)) is not None:
                        yield metric_name(split, inner, label), number
        elif (number := finite_number(value)) is not None:
            yield metric_name(split, name), number


def epoch_metrics(record: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """One epoch's history record (train_loss, lr, val_*, img_s, ...) without its counters."""
    for name, value in record.items():
        if name in ("epoch", "global_step"):
            continue
        if (number := finite_number(value)) is not None:
            yield metric_name("epoch_seconds" if name == "seconds" else name), number
