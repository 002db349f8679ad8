"""Bring your own files through the fetch and validate stages with nothing but config: an image-classification
Parquet file as public datasets ship it (PNG bytes, an integer class, a writer id, no id column), and text
records without ids, groups or labels."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from doughflow.config import ConfigError
from doughflow.data.adapters import adapter_for
from doughflow.experiment import load_experiment
from doughflow.runs import RunPaths
from doughflow.stages.fetch import fetch
from doughflow.stages.validate import validate


def _png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (value * 40 % 256, 90, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def digits_file(tmp_path):
    """12 images of classes 0..3 (an integer column) by 4 writers, with no id column."""
    path = tmp_path / "digits.parquet"
    pq.write_table(
        pa.table(
            {
                "image": [_png(i) for i in range(12)],
                "label": pa.array([i % 4 for i in range(12)], pa.int64()),
                "writer_id": [f"w{i % 4}" for i in range(12)],
            }
        ),
        path,
    )
    return path


@pytest.mark.parametrize("labels", ["[0, 1, 2, 3]", "['0', '1', '2', '3']"])
def test_an_image_classification_parquet_runs_as_it_is(digits_file, tmp_path, labels):
    """The four refusals a plain file used to meet: integer labels in the config, labels that are digits,
    no id column, an integer class column."""
    config = load_experiment(
        None,
        [
            f"labels={labels}",
            "data.adapter=image_classification",
            "data.label_column=label",
            f"data.source.url={digits_file}",
            "data.group_column=writer_id",
            "data.image_size=16",
        ],
    )
    paths = RunPaths(tmp_path / "artifacts", "r")
    raw = fetch(config, paths)
    assert raw.made_ids == 12 and raw.files[0].made_ids == 12
    ids = pq.read_table(raw.shards[0].path).column("sample_id").to_pylist()
    assert ids == [f"digits.parquet#{row:09d}" for row in range(12)]
    result = validate(config, paths, raw)
    assert result.rows_valid == 12 and result.reasons == {} and result.group_column == "writer_id"
    valid = pq.read_table(result.manifest.shards[0].path)
    adapter = adapter_for(config)
    assert adapter.target_columns == ["_class_0", "_class_1", "_class_2", "_class_3"]
    assert adapter.targets(valid).argmax(axis=1).tolist() == valid.column("label").to_pylist()
    assert adapter.label_map()["labels"] == config.labels and adapter.label_map()["index"]["3"] == 3
    again = fetch(config, RunPaths(tmp_path / "elsewhere", "r2"))  # made ids are the same on every rerun
    assert pq.read_table(again.shards[0].path).column("sample_id").to_pylist() == ids


def test_a_class_outside_the_label_map_is_quarantined_naming_it(digits_file, tmp_path):
    config = load_experiment(
        None,
        [
            "labels=[0, 1, 2]",
            "data.adapter=image_classification",
            f"data.source.url={digits_file}",
            "data.group_column=writer_id",
            "data.image_size=16",
        ],
    )
    paths = RunPaths(tmp_path / "artifacts", "r")
    result = validate(config, paths, fetch(config, paths))
    quarantine = pq.read_table(result.quarantine_path).to_pylist()
    assert result.rows_valid == 9 and result.reasons == {"label: unknown class": 3}
    assert all("class 3 is not in the label map" in row["_reason"] for row in quarantine)


def test_text_records_without_ids_groups_or_labels_pass_validate(tmp_path):
    """CSV person records: ids are made, postcodes stay text, bad rows are quarantined with a reason each."""
    rows = {
        "name": ["Ann Lee", "ann lee", "", "Bo Chan", "?!", "Cy Diaz"],
        "postcode": ["01234", "01234", "", "99999", "", "12345"],
        "note": ["x" * 5, "", "", "y" * 80, "", ""],
    }
    source = tmp_path / "people.csv"
    pacsv.write_csv(pa.table(rows), source)
    overrides = [
        "data.adapter=text",
        "data.text_columns=[name, postcode, note]",
        f"data.source.url={source}",
        "data.max_text_chars=60",
        "data.subsample.near_dup.kind=auto",
    ]
    with pytest.raises(ConfigError, match="has no model to train"):
        load_experiment(None, overrides)
    config = load_experiment(None, overrides, trains=False)
    paths = RunPaths(tmp_path / "artifacts", "r")
    raw = fetch(config, paths)
    assert raw.made_ids == 6
    result = validate(config, paths, raw)
    assert result.group_column is None and result.rows_valid == 3
    assert result.reasons == {"text: empty": 2, "text: too long": 1}
    valid = pq.read_table(result.manifest.shards[0].path).to_pydict()
    assert valid["postcode"] == ["01234", "01234", "12345"]  # read as text: the leading zero stays
    assert valid["_text"] == ["Ann Lee 01234 xxxxx", "ann lee 01234", "Cy Diaz 12345"]
    assert "_text" in result.manifest.columns and "_content_hash" not in result.manifest.columns
    quarantine = pq.read_table(result.quarantine_path).to_pylist()
    assert {row["sample_id"]: row["_source_row"] for row in quarantine} == {
        "people.csv#000000002": 2,
        "people.csv#000000003": 3,
        "people.csv#000000004": 4,
    }
    assert np.all([row["_reason"] for row in quarantine])
