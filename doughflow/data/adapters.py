"""Dataset adapters: the one extension point between a dataset's columns and the pipeline's tensors.

Every stage after fetch needs the same three answers about a dataset: which columns hold the labels,
what is wrong with a row's labels (so validate can quarantine it with a reason), and how a row becomes a
target vector. An adapter answers them once. Validate writes each valid row's targets as *canonical
target columns*, one numeric column per entry of ``labels`` (``target_columns``), so the loaders,
evaluation, export checks and bundle read every dataset the same way: the input is always the image
column decoded by :mod:`doughflow.preprocessing`, the target always ``float32[len(labels)]``.

Two adapters are built in: ``pizza_counts`` (one count column ``<target_prefix><label>`` per label;
counts are already canonical, so nothing is added) and ``image_classification`` (one column of class
names, ``data.label_column``; validate adds one-hot ``_class_<label>`` columns). Register your own with
:func:`register_adapter` and name its module in ``data.import_module`` (see the README).
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pyarrow as pa

from doughflow.config import DataConfig, ExperimentConfig

PROBLEMS = ("count", "classification")
CLASS_PREFIX = "_class_"

ADAPTER_REGISTRY: dict[str, type["DatasetAdapter"]] = {}


class AdapterSchemaError(ValueError):
    """A source file lacks an adapter's label column, or holds it with the wrong type."""


class DatasetAdapter(ABC):
    """How one kind of dataset maps to (image, target vector). Subclasses set ``problem`` and implement
    the abstract methods; ``labels`` is the config's label map (the model's output order)."""

    problem: ClassVar[str] = "count"

    def __init__(self, labels: list[str]):
        self.labels = list(labels)

    @classmethod
    def from_data(cls, data: DataConfig, labels: list[str]) -> "DatasetAdapter":
        """Build from the ``DataConfig`` fields this adapter uses (override to read more than labels)."""
        return cls(labels)

    @property
    @abstractmethod
    def source_columns(self) -> list[str]:
        """Label columns every source row must have (validate reads them)."""

    @property
    @abstractmethod
    def target_columns(self) -> list[str]:
        """Numeric columns, one per label in order, holding the target after validate."""

    @abstractmethod
    def check_schema_types(self, schema: pa.Schema, path: str) -> None:
        """Raise AdapterSchemaError naming ``path`` and the column when a label column has the wrong type
        (missing columns are reported before this is called)."""

    @abstractmethod
    def label_problem(self, values: list) -> tuple[str, str] | None:
        """(category, detail) of the first thing wrong with one row's ``source_columns`` values, or None.
        The category (``column: kind``) is counted in the report; the detail is kept with the row."""

    def derived_columns(self, table: pa.Table) -> dict[str, pa.Array]:
        """Target columns validate appends to the valid rows; empty when the source's are canonical."""
        return {}

    def label_map(self) -> dict:
        """labels.json of the bundle: what the model's outputs mean, for a consumer without our code."""
        return {"task": self.problem, "labels": self.labels, "index": {label: i for i, label in enumerate(self.labels)}}

    def targets(self, table: pa.Table) -> np.ndarray:
        """N x len(labels) float32 targets from the canonical target columns."""
        if table.num_rows == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.stack([table.column(c).to_numpy(zero_copy_only=False).astype(np.float32)
                         for c in self.target_columns], axis=1)


def count_label_problem(values: list, target_columns: list[str], max_count: int) -> tuple[str, str] | None:
    """A count must be present, a finite whole number and within 0..max_count.

    Null is a missing label; NaN and +-inf are "not finite" (a NaN that reaches Parquet was written as a
    value, not left empty: CSV readers already turn "nan" and empty cells into nulls). Both are judged
    before any cast, because ``int(inf)`` raises OverflowError, which once stopped validate with no file,
    row or column named."""
    for name, value in zip(target_columns, values):
        if value is None:
            return f"{name}: missing label", f"{name}: missing label"
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return f"{name}: not a number", f"{name}: {value!r} is not a number"
        if not math.isfinite(number):
            return f"{name}: not finite", f"{name}: count {value!r} is not a finite number"
        if number != int(number):
            return f"{name}: not a whole number", f"{name}: count {value} is not a whole number"
        if not 0 <= value <= max_count:
            return f"{name}: out of range", f"{name}: count {value} outside 0..{max_count}"
    return None


class CountColumns(DatasetAdapter):
    """Count regression: one count column per label; the model outputs one count per label."""

    problem = "count"

    def __init__(self, labels: list[str], target_prefix: str = "count_", max_count: int = 20):
        super().__init__(labels)
        self.target_prefix = target_prefix
        self.max_count = max_count

    @classmethod
    def from_data(cls, data: DataConfig, labels: list[str]) -> "CountColumns":
        return cls(labels, data.target_prefix, data.max_count)

    @property
    def source_columns(self) -> list[str]:
        return [f"{self.target_prefix}{label}" for label in self.labels]

    @property
    def target_columns(self) -> list[str]:
        return self.source_columns

    def check_schema_types(self, schema: pa.Schema, path: str) -> None:
        for name in self.target_columns:
            kind = schema.field(name).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
                raise AdapterSchemaError(f"{path}: label column {name!r} must be numeric, got {kind}")

    def label_problem(self, values: list) -> tuple[str, str] | None:
        return count_label_problem(values, self.target_columns, self.max_count)

    def label_map(self) -> dict:
        return {**super().label_map(), "task": "count_regression",
                "output": "counts[batch, len(labels)]: expected number of each topping"}


class ImageClassification(DatasetAdapter):
    """Single-label classification: one column of class names; the model outputs one logit per class."""

    problem = "classification"

    def __init__(self, labels: list[str], label_column: str = "label"):
        super().__init__(labels)
        self.label_column = label_column
        self.index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_data(cls, data: DataConfig, labels: list[str]) -> "ImageClassification":
        return cls(labels, data.label_column)

    @property
    def source_columns(self) -> list[str]:
        return [self.label_column]

    @property
    def target_columns(self) -> list[str]:
        return [f"{CLASS_PREFIX}{label}" for label in self.labels]

    def check_schema_types(self, schema: pa.Schema, path: str) -> None:
        kind = schema.field(self.label_column).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise AdapterSchemaError(f"{path}: class column {self.label_column!r} (data.label_column) must hold "
                                     f"class names (strings), got {kind}")

    def label_problem(self, values: list) -> tuple[str, str] | None:
        value = values[0]
        if value is None or str(value) == "":
            return f"{self.label_column}: missing label", f"{self.label_column}: missing class"
        if str(value) not in self.index:
            return (f"{self.label_column}: unknown class",
                    f"{self.label_column}: class {value!r} is not in the label map {self.labels}")
        return None

    def class_indices(self, table: pa.Table) -> np.ndarray:
        return np.asarray([self.index[str(v)] for v in table.column(self.label_column).to_pylist()], np.int64)

    def derived_columns(self, table: pa.Table) -> dict[str, pa.Array]:
        onehot = np.eye(len(self.labels), dtype=np.int8)[self.class_indices(table)] if table.num_rows else \
            np.zeros((0, len(self.labels)), np.int8)
        return {name: pa.array(onehot[:, k], pa.int8()) for k, name in enumerate(self.target_columns)}

    def label_map(self) -> dict:
        return {**super().label_map(), "label_column": self.label_column,
                "output": "logits[batch, len(labels)]: softmax gives class probabilities; argmax is the class"}


def register_adapter(name: str) -> Callable[[type[DatasetAdapter]], type[DatasetAdapter]]:
    """Class decorator that makes an adapter selectable as ``data.adapter`` in the config. The class is
    built by its ``from_data(data, labels)`` classmethod (the default passes ``labels`` alone)."""

    def decorate(cls: type[DatasetAdapter]) -> type[DatasetAdapter]:
        if cls.problem not in PROBLEMS:
            raise ValueError(f"adapter {name!r}: problem must be one of {PROBLEMS}, got {cls.problem!r}")
        ADAPTER_REGISTRY[name] = cls
        return cls

    return decorate


register_adapter("pizza_counts")(CountColumns)
register_adapter("image_classification")(ImageClassification)


def adapter_class(name: str, import_module: str | None = None) -> type[DatasetAdapter]:
    if import_module:
        importlib.import_module(import_module)
    if name not in ADAPTER_REGISTRY:
        raise KeyError(f"unknown dataset adapter {name!r} (data.adapter); registered: {sorted(ADAPTER_REGISTRY)}. "
                       f"Register your own with @register_adapter and name its module in data.import_module")
    return ADAPTER_REGISTRY[name]


def adapter_for_data(data: DataConfig, labels: list[str]) -> DatasetAdapter:
    """The adapter a ``DataConfig`` names, built by its ``from_data`` from the fields it uses."""
    return adapter_class(data.adapter, data.import_module).from_data(data, labels)


def adapter_for(config: ExperimentConfig) -> DatasetAdapter:
    """The adapter of an experiment."""
    return adapter_for_data(config.data, config.labels)


def problem_of(config: ExperimentConfig) -> str:
    """``count`` or ``classification``: what loss, metrics, gates and bundle the run uses."""
    return adapter_for(config).problem
