"""Dataset adapters: the built-in two, validation through them, and registering one's own by name."""

from __future__ import annotations

import io
import json
import math
import re
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from doughflow.config import ConfigError, label_key, label_name, load_config, validate_config
from doughflow.data.adapters import (
    ADAPTER_REGISTRY,
    CLASS_PREFIX,
    CountColumns,
    ImageClassification,
    TextRecords,
    adapter_for,
    count_label_problem,
    problem_of,
    register_adapter,
)
from doughflow.data.sources.fetch import FetchOptions, fetch_source
from doughflow.data.validate import SchemaError, validate_shards
from doughflow.preprocessing import Preprocessing
from doughflow.training.data import load_split

LABELS = ["circle", "square", "triangle"]


def _png(colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _source(tmp_path, labels: list, name: str = "src"):
    n = len(labels)
    folder = tmp_path / name
    folder.mkdir()
    pq.write_table(
        pa.table(
            {
                "sample_id": [f"s{i}" for i in range(n)],
                "group": [f"g{i % 2}" for i in range(n)],
                "image": [_png((10 * i, 40, 90)) for i in range(n)],
                "label": labels,
            }
        ),
        folder / "part-0.parquet",
    )
    return fetch_source(str(folder), tmp_path / f"{name}-raw")


def _validate(tmp_path, raw, adapter):
    return validate_shards(
        raw,
        tmp_path / "valid",
        id_column="sample_id",
        image_column="image",
        group_column="group",
        target_columns=adapter.target_columns,
        max_count=0,
        adapter=adapter,
    )


def test_pizza_default_is_count_adapter_with_unchanged_columns():
    config = load_config(None)
    adapter = adapter_for(config)
    assert isinstance(adapter, CountColumns) and problem_of(config) == "count"
    assert adapter.target_columns == adapter.source_columns == [f"count_{label}" for label in config.labels]
    assert adapter.label_map()["task"] == "count_regression"
    assert adapter.derived_columns(pa.table({"x": [1]})) == {}


def test_shapes_config_is_classification():
    config = load_config("configs/shapes.yaml")
    adapter = adapter_for(config)
    assert isinstance(adapter, ImageClassification) and adapter.problem == "classification"
    assert adapter.target_columns == [f"_class_{label}" for label in config.labels]
    assert adapter.label_map()["labels"] == config.labels and "logits" in adapter.label_map()["output"]


def test_classification_label_problems_name_the_value():
    adapter = ImageClassification(LABELS, "label")
    assert adapter.label_problem(["square"]) is None
    category, detail = adapter.label_problem(["hexagon"])
    assert category == "label: unknown class" and "'hexagon'" in detail and "label map" in detail
    assert adapter.label_problem([None])[0] == "label: missing label"
    assert adapter.label_problem([""])[0] == "label: missing label"


def test_validate_quarantines_unknown_classes_and_writes_one_hot_targets(tmp_path):
    adapter = ImageClassification(LABELS, "label")
    raw = _source(tmp_path, ["circle", "hexagon", "triangle", "square", None, "circle"])
    result = _validate(tmp_path, raw, adapter)
    quarantine = pq.read_table(result.quarantine_path).to_pylist()
    assert result.rows_valid == 4 and result.rows_quarantined == 2
    by_id = {row["sample_id"]: row for row in quarantine}
    assert "'hexagon' is not in the label map" in by_id["s1"]["_reason"] and by_id["s1"]["_source_row"] == 1
    assert by_id["s4"]["_source_row"] == 4 and "missing class" in by_id["s4"]["_reason"]
    assert result.reasons == {"label: unknown class": 1, "label: missing label": 1}
    valid = pq.read_table(result.manifest.shards[0].path)
    assert all(name in valid.column_names for name in adapter.target_columns)
    assert all(name in result.manifest.columns for name in adapter.target_columns)
    targets = adapter.targets(valid)
    assert targets.dtype == np.float32 and targets.shape == (4, 3)
    assert targets.sum(axis=1).tolist() == [1.0] * 4
    assert [LABELS[k] for k in targets.argmax(axis=1)] == valid.column("label").to_pylist()
    split = load_split(
        result.manifest.paths(),
        id_column="sample_id",
        image_column="image",
        target_columns=adapter.target_columns,
        preprocessing=Preprocessing(16),
    )
    assert np.array_equal(split.targets, targets)


def test_a_class_column_of_neither_names_nor_numbers_stops_naming_file_and_column(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    pq.write_table(
        pa.table({"sample_id": ["a"], "group": ["g"], "image": [_png()], "label": [3.5]}), folder / "p.parquet"
    )
    raw = fetch_source(str(folder), tmp_path / "raw")
    with pytest.raises(
        SchemaError, match=r"p\.parquet.*'label'.*\(strings\) or class numbers \(integers\), got double"
    ):
        _validate(tmp_path, raw, ImageClassification(LABELS, "label"))
    with pytest.raises(SchemaError, match="missing column"):
        _validate(tmp_path, raw, ImageClassification(LABELS, "kind"))


def test_image_folder_labels_come_from_the_top_folder(tmp_path):
    """An image folder with one folder per class needs no labels file: label_column=folder."""
    for i, label in enumerate(["circle", "square", "circle", "blob"]):
        (tmp_path / "imgs" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "imgs" / label / f"{i}.png").write_bytes(_png((20 * i, 50, 50)))
    raw = fetch_source(str(tmp_path / "imgs"), tmp_path / "raw", options=FetchOptions(format="images"))
    result = validate_shards(
        raw,
        tmp_path / "valid",
        id_column="sample_id",
        image_column="image",
        group_column="sample_id",
        target_columns=[],
        max_count=0,
        adapter=ImageClassification(LABELS, "folder"),
    )
    assert result.rows_valid == 3 and result.reasons == {"folder: unknown class": 1}


def test_a_custom_adapter_registers_by_name_from_its_module(tmp_path, monkeypatch):
    """The README's extension: a module with @register_adapter, named in data.import_module."""
    (tmp_path / "my_adapters.py").write_text(
        textwrap.dedent('''
        import pyarrow as pa
        from doughflow.data.adapters import ImageClassification, register_adapter

        @register_adapter("upper_case_classes")
        class UpperCase(ImageClassification):
            """Class names arrive upper-case; the label map is lower-case."""

            def label_problem(self, values):
                return super().label_problem([str(values[0]).lower()] if values[0] is not None else values)

            def class_indices(self, table):
                lowered = pa.table({self.label_column: [str(v).lower() for v in table.column(self.label_column).to_pylist()]})
                return super().class_indices(lowered)
    ''')
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        config = validate_config(
            {
                "labels": LABELS,
                "data": {
                    "adapter": "upper_case_classes",
                    "import_module": "my_adapters",
                    "source": {"url": str(tmp_path)},
                },
            }
        )
        adapter = adapter_for(config)
        assert type(adapter).__name__ == "UpperCase" and adapter.problem == "classification"
        raw = _source(tmp_path, ["CIRCLE", "Square", "HEXAGON"])
        result = _validate(tmp_path, raw, adapter)
        assert result.rows_valid == 2
        valid = pq.read_table(result.manifest.shards[0].path)
        assert adapter.targets(valid).argmax(axis=1).tolist() == [0, 1]
    finally:
        ADAPTER_REGISTRY.pop("upper_case_classes", None)
        sys.modules.pop("my_adapters", None)


def test_register_adapter_rejects_an_unknown_problem():
    class Odd(CountColumns):
        problem = "segmentation"

    with pytest.raises(ValueError, match="problem must be one of"):
        register_adapter("odd")(Odd)
    assert "odd" not in ADAPTER_REGISTRY


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70)))
def test_count_label_problem_judges_every_number_without_raising(value):
    """Any value a numeric column can hold gets a verdict naming the column, never an exception."""
    problem = count_label_problem([value], ["count_olive"], 20)
    good = value is not None and math.isfinite(value) and float(value) == int(value) and 0 <= value <= 20
    assert (problem is None) == good
    if problem is not None:
        assert problem[0].startswith("count_olive: ") and problem[1].startswith("count_olive: ")


printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=24).filter(str.strip)
label_lists = st.lists(st.integers(-(10**9), 10**9) | printable, min_size=1, max_size=12, unique_by=label_name)


@settings(max_examples=150, deadline=None)
@given(label_lists)
def test_any_label_list_round_trips_through_config_adapter_and_labels_json(labels):
    """Names or integers as the data has them: labels.json keeps the values and their order, the index maps
    each one's text to its output, derived column names are safe and distinct, and a class column holding
    the values (integers as integers) gives back each label's index."""
    keys = [label_key(label) for label in labels]
    assume(len(set(keys)) == len(keys))  # a key collision is refused by the config, naming both labels
    config = validate_config(
        {
            "labels": labels,
            "data": {"adapter": "image_classification", "label_column": "y", "source": {"url": "somewhere"}},
        }
    )
    assert config.labels == labels and [type(x) for x in config.labels] == [type(x) for x in labels]
    assert validate_config(json.loads(json.dumps(config.model_dump(mode="json")))).labels == labels
    adapter = adapter_for(config)
    shipped = json.loads(json.dumps(adapter.label_map()))
    assert shipped["labels"] == labels
    assert shipped["index"] == {str(label): i for i, label in enumerate(labels)}
    assert all(re.fullmatch(rf"{CLASS_PREFIX}[A-Za-z0-9_]+", c) for c in adapter.target_columns)
    assert len(set(adapter.target_columns)) == len(labels) == len(shipped["target_columns"])
    column = pa.array(labels) if all(isinstance(x, int) for x in labels) else pa.array([str(x) for x in labels])
    table = pa.table({"y": column})
    assert [adapter.label_problem([value]) for value in table.column("y").to_pylist()] == [None] * len(labels)
    assert adapter.class_indices(table).tolist() == list(range(len(labels)))
    assert CountColumns(labels).source_columns == [f"count_{label}" for label in labels]  # the count convention


def test_labels_that_read_the_same_are_refused_and_keys_keep_plain_labels():
    with pytest.raises(ConfigError, match="'1' are the same class"):
        validate_config({"labels": [1, "1"], "data": {"source": {"url": "x"}}})
    for bad, why in (
        (True, "valid integer"),
        (1.5, "valid integer"),
        ("", "is empty"),
        (" ", "is empty"),
        ("a\tb", "control character"),
        ("x" * 201, "longer than 200"),
    ):
        with pytest.raises(ConfigError, match=why):
            validate_config({"labels": [bad], "data": {"source": {"url": "x"}}})
    assert [label_key(x) for x in ("pepperoni", 7, "3d", "a_b")] == ["pepperoni", "7", "3d", "a_b"]
    assert re.fullmatch(r"a_b_[0-9a-f]{8}", label_key("a b")) and label_key("a b") != label_key("a-b")


def test_text_adapter_reads_text_columns_and_an_optional_class_column():
    adapter = adapter_for(
        validate_config({"data": {"adapter": "text", "text_columns": ["name", "city"], "source": {"url": "x"}}})
    )
    assert isinstance(adapter, TextRecords) and adapter.modality == "text" and adapter.problem == "none"
    assert adapter.text_column == "_text" and adapter.source_columns == [] and adapter.target_columns == []
    labelled = TextRecords([0, 1], ["body"], label_column="stars")
    assert labelled.text_column == "body" and labelled.source_columns == ["stars"]
    assert (
        labelled.target_columns == ["_class_0", "_class_1"] and labelled.label_problem([2])[0] == "stars: unknown class"
    )
