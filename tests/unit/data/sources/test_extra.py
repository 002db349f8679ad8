"""Extra sources (reviewed corrections) appended by the fetch stage, origin kept, fingerprint changed."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from doughflow.config import load_config
from doughflow.data.sources.extra import ORIGIN_FILE
from doughflow.data.synthetic.pizza import render_pizza
from doughflow.data.validate import validate_shards
from doughflow.runs import RunPaths
from doughflow.stages.fetch import fetch
from tests.support.configs import TINY_OVERRIDES

LABELS = ["pepperoni", "mushroom", "olive", "basil", "pepper"]


def corrections(path, n=3):
    rng = np.random.default_rng(3)
    images = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(render_pizza({"olive": 2}, rng, 64)).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    pq.write_table(
        pa.table(
            {
                "sample_id": [f"review-pz-{i:07d}" for i in range(n)],
                "image": images,
                "customer_id": ["cust-00001"] * n,
                **{f"count_{label}": pa.array([2 if label == "olive" else 0] * n, pa.int16()) for label in LABELS},
                "origin_run_id": ["run-a"] * n,
                "origin_sample_id": [f"pz-{i:07d}" for i in range(n)],
                "origin_reviewer": ["ana"] * n,
            }
        ),
        path,
    )
    return path


def test_fetch_appends_extra_sources_with_origin(tiny_source, tmp_path):
    extra = corrections(tmp_path / "corrections.parquet")
    base = load_config(None, TINY_OVERRIDES + [f"data.source.url={tiny_source}", f"artifacts_dir={tmp_path / 'a'}"])
    plain = fetch(base, RunPaths(tmp_path / "a", "plain"))
    config = load_config(
        None,
        TINY_OVERRIDES
        + [f"data.source.url={tiny_source}", f"artifacts_dir={tmp_path / 'a'}", f"data.extra_sources=[{extra}]"],
    )
    raw_dir = tmp_path / "a" / "with-extra" / "data" / "raw"
    manifest = fetch(config, RunPaths(tmp_path / "a", "with-extra"))
    # each correction supersedes its source row: net row count unchanged, the old rows gone
    assert manifest.rows == plain.rows and manifest.fingerprint != plain.fingerprint
    main_ids = {i for s in manifest.shards[:-1] for i in pq.read_table(s.path).column("sample_id").to_pylist()}
    assert not main_ids & {"pz-0000000", "pz-0000001", "pz-0000002"} and len(main_ids) == plain.rows - 3
    assert all(s.rows == pq.read_metadata(s.path).num_rows for s in manifest.shards)
    assert str(extra) in manifest.source
    ids = pq.read_table([s.path for s in manifest.shards][-1]).column("sample_id").to_pylist()
    assert ids == [f"review-pz-{i:07d}" for i in range(3)]
    origin = pq.read_table(raw_dir / ORIGIN_FILE).to_pylist()
    assert origin[0] == {
        "sample_id": "review-pz-0000000",
        "extra_source": str(extra),
        "origin_run_id": "run-a",
        "origin_sample_id": "pz-0000000",
        "origin_reviewer": "ana",
    }
    # the appended rows pass validation like any other row
    result = validate_shards(
        manifest,
        tmp_path / "valid",
        id_column="sample_id",
        image_column="image",
        group_column="customer_id",
        target_columns=[f"count_{label}" for label in LABELS],
        max_count=20,
    )
    assert result.rows_in == manifest.rows and result.rows_valid == manifest.rows - result.rows_quarantined
    valid_ids = {i for s in result.manifest.shards for i in pq.read_table(s.path).column("sample_id").to_pylist()}
    assert {f"review-pz-{i:07d}" for i in range(3)} <= valid_ids


def test_extra_source_with_wrong_types_is_named(tiny_source, tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(
        pa.table(
            {
                "sample_id": ["x"],
                "image": ["not bytes"],
                "customer_id": ["c"],
                **{f"count_{label}": ["many"] for label in LABELS},
            }
        ),
        bad,
    )
    config = load_config(None, TINY_OVERRIDES + [f"data.source.url={tiny_source}", f"data.extra_sources=[{bad}]"])
    with pytest.raises(ValueError, match=rf"extra source {bad}: column 'count_pepperoni' cannot be read as int16"):
        fetch(config, RunPaths(tmp_path / "a", "r"))
