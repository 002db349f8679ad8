"""Result storage: records are JSON of our own types; anything else is refused unread, and a cache
lookup that meets one recomputes the stage instead of deserialising it."""

from __future__ import annotations

import json
import logging
import os
import pickle

import pytest
from prefect.results import ResultStore
from prefect.serializers import PickleSerializer

from doughflow.config import load_config
from doughflow.data.manifest import DataManifest, ShardInfo, UnitEntry
from doughflow.data.split import SplitResult
from doughflow.export.formats import DeployResult, FormatResult
from doughflow.export.onnx_export import ParityReport
from doughflow.orchestration.results import (
    RESULT_SERIALIZER,
    TrustedLocalFileSystem,
    UntrustedResultError,
    read_trusted,
    result_storage,
)
from doughflow.orchestration.stage_tasks import MAX_CACHE_GENERATIONS, live_cache_key
from doughflow.training.job import TrainResult


class Planted:
    """What an attacker pickles: unpickling it runs a command (here: creates a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_result_storage_for_a_local_folder(prefect_api, tmp_path):
    block = result_storage(str(tmp_path / "results"))
    assert (tmp_path / "results").is_dir() and block.basepath == str((tmp_path / "results").resolve())
    assert isinstance(block, TrustedLocalFileSystem)


def test_a_saved_block_is_reused_and_another_location_gets_its_own(prefect_api, tmp_path):
    first = result_storage(str(tmp_path / "results"))
    again = result_storage(str(tmp_path / "results"))  # an earlier run saved it: loaded, not saved again
    assert again.basepath == first.basepath and again._block_document_id == first._block_document_id
    assert isinstance(again, TrustedLocalFileSystem)
    other = result_storage(str(tmp_path / "other"))
    assert other.basepath == str((tmp_path / "other").resolve())
    assert other._block_document_id != first._block_document_id


def _store(tmp_path, serializer=RESULT_SERIALIZER) -> ResultStore:
    return ResultStore(result_storage=TrustedLocalFileSystem(basepath=str(tmp_path)), serializer=serializer)


def _write(store: ResultStore, key: str, value) -> bytes:
    store.persist_result_record(store.create_result_record(value, key=key))
    return (store.result_storage._resolve_path(key)).read_bytes()


SAMPLES = [
    DataManifest(
        "s3://bucket/src",
        "f" * 64,
        3,
        [ShardInfo("/a/part-0.parquet", 3, 10, "a" * 64)],
        ["id"],
        12,
        [UnitEntry("u", "k", "parquet", 1, 12, "b" * 64, 3, ["/a/part-0.parquet"])],
        {"count_x": 1},
    ),
    SplitResult(manifests={}, rows={"train": 1, "val": 0, "test": 2}, groups={"train": 1, "val": 0, "test": 1}),
    TrainResult("/m.pt", "/h.json", "/ds.json", 2, 0, float("nan"), 0.5, 1, 3.2, 100.0, {"step_loss": [1.0, 0.5]}),
    DeployResult(
        [FormatResult("onnx", "model.onnx", "/x.onnx", True, parity=ParityReport(4, 0.0, 0.0, 1.0, 1e-3, 1.0, True))],
        4,
        "/f.json",
    ),
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_stage_results_round_trip_as_json(tmp_path, value):
    raw = _write(_store(tmp_path), "k", value)
    assert json.loads(raw)["metadata"]["serializer"]["type"] == "doughflow-json"
    back = read_trusted(raw, "k")
    assert type(back) is type(value)
    assert json.dumps(back.__dict__, default=str, sort_keys=True) == json.dumps(
        value.__dict__, default=str, sort_keys=True
    )


def _planted_records(tmp_path, marker) -> dict[str, bytes]:
    pickled = _write(_store(tmp_path, PickleSerializer()), "pickle", Planted(marker))
    evil_decoder = json.dumps(
        {
            "metadata": {"serializer": {"type": "json", "object_decoder": "subprocess.call"}},
            "result": json.dumps({"touch": 0, str(marker): 0}),
        }
    ).encode()
    foreign_class = json.dumps(
        {
            "metadata": {"serializer": {"type": "doughflow-json"}},
            "result": json.dumps({"__class__": "os.system", "data": f"touch {marker}"}),
        }
    ).encode()
    return {
        "a pickle record": pickled,
        "raw pickle bytes": pickle.dumps(Planted(marker)),
        "a json record with its own decoder": evil_decoder,
        "a class that is not ours": foreign_class,
        "not json at all": b"\x00\x01garbage",
    }


def test_records_we_did_not_write_are_refused_unread(tmp_path):
    marker = tmp_path / "executed"
    store = _store(tmp_path)
    for name, raw in _planted_records(tmp_path, marker).items():
        key = name.replace(" ", "-")
        (tmp_path / key).write_bytes(raw)
        with pytest.raises(UntrustedResultError):
            read_trusted(raw, key)
        if name != "a class that is not ours":  # the storage refuses it before Prefect deserialises it
            with pytest.raises(UntrustedResultError):
                store.result_storage.read_path(key, _sync=True)
        with pytest.raises(UntrustedResultError):  # (that one: our decoder refuses the class, importing nothing)
            store.read(key)
        assert not store.exists(key)
    assert not marker.exists()


def test_a_bad_cached_record_is_a_miss_with_a_warning(tmp_path, caplog):
    marker = tmp_path / "executed"
    (tmp_path / "results").mkdir()
    store = _store(tmp_path / "results")
    config = load_config(None, [f"artifacts_dir={tmp_path / 'artifacts'}"])

    class Context:
        result_store = store

    planted = _planted_records(tmp_path / "planted", marker)
    for name, raw in planted.items():
        key = name.replace(" ", "-")
        (tmp_path / "results" / key).write_bytes(raw)
        with caplog.at_level(logging.WARNING):
            assert live_cache_key(Context, key, config, DataManifest) == f"{key}-g1"
        assert "ignoring cached result" in caplog.text
    _write(store, "good", SAMPLES[0])
    assert live_cache_key(Context, "good", config, DataManifest) == "good"
    assert live_cache_key(Context, "good", config, SplitResult) == "good-g1"  # valid JSON, wrong type: a miss
    for generation in range(MAX_CACHE_GENERATIONS + 1):
        (tmp_path / "results" / ("all" if generation == 0 else f"all-g{generation}")).write_bytes(
            planted["a pickle record"]
        )
    assert live_cache_key(Context, "all", config, DataManifest) is None  # no usable generation: run uncached
    assert not marker.exists()
