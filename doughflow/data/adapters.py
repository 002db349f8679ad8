"""Dataset adapters: the one extension point between a dataset's columns and the pipeline's tensors.

Every stage after fetch needs the same three answers about a dataset: which columns hold the labels,
what is wrong with a row's labels (so validate can quarantine it with a reason), and how a row becomes a
target vector. An adapter answers them once. Validate writes each valid row's targets as *canonical
target columns*, one numeric column per entry of ``labels`` (``target_columns``), so the loaders,
evaluation, export checks and bundle read every dataset the same way: the input is always the image
column decoded by :mod:`doughflow.preprocessing`, the target always ``float32[len(labels)]``.

Three adapters are built in: ``pizza_counts`` (one count column ``<target_prefix><label>`` per label;
counts are already canonical, so nothing is added), ``image_classification`` (one class column,
``data.label_column``, of names or integers; validate adds one-hot ``_class_<key>`` columns) and
``text`` (rows of text in ``data.text_columns``, optionally with a class column: there is no model to
train on them, but every data stage runs). Register your own with :func:`register_adapter` and name its
module in ``data.import_module`` (see the README).

Labels are kept as the data has them (``labels: [0, 1, 2]`` or ``["3 door", "crème"]``): a row's
class matches a label when their text is equal (an integer column's 3 is the label 3), column names
built from a label use its key (:func:`doughflow.config.label_key`: the label itself when it is
letters, digits and _, else those plus a hash), and ``labels.json`` keeps the original values.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
import pyarrow as pa

from doughflow.config import DataConfig, ExperimentConfig, label_key, label_name

# "none": the rows have no target a model is trained on (the text adapter): only the data stages run.
PROBLEMS = ("count", "classification", "none")
MODALITIES = ("image", "text")
CLASS_PREFIX = "_class_"
JOINED_TEXT = "_text"  # the text adapter's joined text columns, when there are several

ADAPTER_REGISTRY: dict[str, type[DatasetAdapter]] = {}


class AdapterSchemaError(ValueError):
    """A source file lacks an adapter's label column, or holds it with the wrong type."""


class DatasetAdapter(ABC):
    """How one kind of dataset maps to (image, target vector). Subclasses set ``problem`` and implement
    the abstract methods; ``labels`` is the config's label map (the model's output order)."""

    problem: ClassVar[str] = "count"
    modality: ClassVar[str] = "image"  # what each row is: an image (image_column) or text (text adapter)

    def __init__(self, labels: Sequence[str | int]) -> None:
        self.values = list(labels)  # as configured: labels.json keeps them
        self.labels = [label_name(label) for label in self.values]  # their text: matched against class values
        self.keys = [label_key(label) for label in self.values]  # safe inside column names

    @classmethod
    def from_data(cls, data: DataConfig, labels: Sequence[str | int]) -> DatasetAdapter:
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
        """labels.json of the bundle: what the model's outputs mean, for a consumer without our code. ``labels``
        are the configured values (integers stay integers), ``index`` maps each one's text to its output."""
        return {
            "task": self.problem,
            "labels": self.values,
            "index": {label: i for i, label in enumerate(self.labels)},
            "target_columns": self.target_columns,
        }

    def targets(self, table: pa.Table) -> np.ndarray:
        """N x len(labels) float32 targets from the canonical target columns."""
        if table.num_rows == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.stack(
            [table.column(c).to_numpy(zero_copy_only=False).astype(np.float32) for c in self.target_columns], axis=1
        )


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

    def __init__(self, labels: Sequence[str | int], target_prefix: str = "count_", max_count: int = 20) -> None:
        super().__init__(labels)
        self.target_prefix = target_prefix
        self.max_count = max_count

    @classmethod
    def from_data(cls, data: DataConfig, labels: Sequence[str | int]) -> CountColumns:
        return cls(labels, data.target_prefix, data.max_count)

    @property
    def source_columns(self) -> list[str]:
        """``<target_prefix><label>``, the label as written: the count columns are the source's own."""
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
        return {
            **super().label_map(),
            "task": "count_regression",
            "output": "counts[batch, len(labels)]: expected number of each topping",
        }


def check_class_column(schema: pa.Schema, column: str, path: str) -> None:
    """A class column holds names (strings) or numbers (integers), plain or dictionary-encoded."""
    kind = schema.field(column).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
        raise AdapterSchemaError(
            f"{path}: class column {column!r} (data.label_column) must hold class names "
            f"(strings) or class numbers (integers), got {kind}"
        )


class ClassColumn:
    """One column of class values (names or integers) judged against a label map, with one-hot targets."""

    def __init__(self, labels: list[str], keys: list[str], column: str) -> None:
        self.labels, self.column = labels, column
        self.index = {label: i for i, label in enumerate(labels)}
        self.target_columns = [f"{CLASS_PREFIX}{key}" for key in keys]

    def problem(self, value: object) -> tuple[str, str] | None:
        if value is None or str(value) == "":
            return f"{self.column}: missing label", f"{self.column}: missing class"
        if str(value) not in self.index:
            return (
                f"{self.column}: unknown class",
                f"{self.column}: class {value!r} is not in the label map {self.labels}",
            )
        return None

    def indices(self, table: pa.Table) -> np.ndarray:
        return np.asarray([self.index[str(v)] for v in table.column(self.column).to_pylist()], np.int64)

    def one_hot(self, indices: np.ndarray) -> dict[str, pa.Array]:
        """One int8 target column per label from each row's class index."""
        onehot = (
            np.eye(len(self.labels), dtype=np.int8)[indices]
            if len(indices)
            else np.zeros((0, len(self.labels)), np.int8)
        )
        return {name: pa.array(onehot[:, k], pa.int8()) for k, name in enumerate(self.target_columns)}


class ImageClassification(DatasetAdapter):
    """Single-label classification: one column of class names or numbers; the model outputs one logit per class."""

    problem = "classification"

    def __init__(self, labels: Sequence[str | int], label_column: str = "label") -> None:
        super().__init__(labels)
        self.label_column = label_column
        self.classes = ClassColumn(self.labels, self.keys, label_column)
        self.index = self.classes.index

    @classmethod
    def from_data(cls, data: DataConfig, labels: Sequence[str | int]) -> ImageClassification:
        return cls(labels, data.label_column or "label")

    @property
    def source_columns(self) -> list[str]:
        return [self.label_column]

    @property
    def target_columns(self) -> list[str]:
        return self.classes.target_columns

    def check_schema_types(self, schema: pa.Schema, path: str) -> None:
        check_class_column(schema, self.label_column, path)

    def label_problem(self, values: list) -> tuple[str, str] | None:
        return self.classes.problem(values[0])

    def class_indices(self, table: pa.Table) -> np.ndarray:
        return self.classes.indices(table)

    def derived_columns(self, table: pa.Table) -> dict[str, pa.Array]:
        return self.classes.one_hot(self.class_indices(table))  # a subclass may map values to classes its own way

    def label_map(self) -> dict:
        return {
            **super().label_map(),
            "label_column": self.label_column,
            "output": "logits[batch, len(labels)]: softmax gives class probabilities; argmax is the class",
        }


def is_plain_value(kind: pa.DataType) -> bool:
    """Numbers, booleans and dates: a text column of these is read as their written form (2024-01-31)."""
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_decimal(kind)
    )


class TextRecords(DatasetAdapter):
    """Rows of text (``data.text_columns``, joined with spaces when there are several), optionally with a
    class column (``data.label_column``, names or integers, judged like image_classification's). No
    model trains on text: ``flows.prepare`` runs fetch, validate (non-empty, UTF-8, at most
    ``data.max_text_chars``), exact and near-dup on the text, caps and the split."""

    problem = "none"
    modality = "text"

    def __init__(
        self,
        labels: Sequence[str | int],
        text_columns: Sequence[str] = ("text",),
        label_column: str | None = None,
        max_text_chars: int = 100_000,
    ) -> None:
        super().__init__(labels if label_column else [])
        if not text_columns:
            raise ValueError("the text adapter needs at least one text column (data.text_columns)")
        self.text_columns = list(text_columns)
        self.label_column = label_column
        self.max_text_chars = max_text_chars
        self.classes = ClassColumn(self.labels, self.keys, label_column) if label_column else None

    @classmethod
    def from_data(cls, data: DataConfig, labels: Sequence[str | int]) -> TextRecords:
        return cls(labels, data.text_columns, data.label_column, data.max_text_chars)

    @property
    def text_column(self) -> str:
        """The column exact and near-dup compare: the one text column, or the joined ones."""
        return self.text_columns[0] if len(self.text_columns) == 1 else JOINED_TEXT

    @property
    def source_columns(self) -> list[str]:
        return [self.label_column] if self.label_column else []

    @property
    def target_columns(self) -> list[str]:
        return self.classes.target_columns if self.classes else []

    def check_schema_types(self, schema: pa.Schema, path: str) -> None:
        for name in self.text_columns:
            kind = schema.field(name).type
            if not (
                pa.types.is_string(kind)
                or pa.types.is_large_string(kind)
                or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind)
                or pa.types.is_null(kind)
                or is_plain_value(kind)
            ):
                raise AdapterSchemaError(
                    f"{path}: text column {name!r} (data.text_columns) must hold text (or "
                    f"numbers and dates, read as written), got {kind}"
                )
        if self.label_column:
            check_class_column(schema, self.label_column, path)

    def label_problem(self, values: list) -> tuple[str, str] | None:
        return self.classes.problem(values[0]) if self.classes else None

    def derived_columns(self, table: pa.Table) -> dict[str, pa.Array]:
        return self.classes.one_hot(self.classes.indices(table)) if self.classes else {}

    def label_map(self) -> dict:
        return {**super().label_map(), "label_column": self.label_column, "text_columns": self.text_columns}


def register_adapter(name: str) -> Callable[[type[DatasetAdapter]], type[DatasetAdapter]]:
    """Class decorator that makes an adapter selectable as ``data.adapter`` in the config. The class is
    built by its ``from_data(data, labels)`` classmethod (the default passes ``labels`` alone)."""

    def decorate(cls: type[DatasetAdapter]) -> type[DatasetAdapter]:
        if cls.problem not in PROBLEMS:
            raise ValueError(f"adapter {name!r}: problem must be one of {PROBLEMS}, got {cls.problem!r}")
        if cls.modality not in MODALITIES:
            raise ValueError(f"adapter {name!r}: modality must be one of {MODALITIES}, got {cls.modality!r}")
        ADAPTER_REGISTRY[name] = cls
        return cls

    return decorate


register_adapter("pizza_counts")(CountColumns)
register_adapter("image_classification")(ImageClassification)
register_adapter("text")(TextRecords)


def adapter_class(name: str, import_module: str | None = None) -> type[DatasetAdapter]:
    if import_module:
        importlib.import_module(import_module)
    if name not in ADAPTER_REGISTRY:
        raise KeyError(
            f"unknown dataset adapter {name!r} (data.adapter); registered: {sorted(ADAPTER_REGISTRY)}. "
            f"Register your own with @register_adapter and name its module in data.import_module"
        )
    return ADAPTER_REGISTRY[name]


def adapter_for_data(data: DataConfig, labels: Sequence[str | int]) -> DatasetAdapter:
    """The adapter a ``DataConfig`` names, built by its ``from_data`` from the fields it uses."""
    return adapter_class(data.adapter, data.import_module).from_data(data, labels)


def adapter_for(config: ExperimentConfig) -> DatasetAdapter:
    """The adapter of an experiment."""
    return adapter_for_data(config.data, config.labels)


def problem_of(config: ExperimentConfig) -> str:
    """``count`` or ``classification``: what loss, metrics, gates and bundle the run uses (``none``: no model)."""
    return adapter_for(config).problem
