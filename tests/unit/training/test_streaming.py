"""The streaming loader: coverage, determinism, resume skipping, bad input."""

from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from doughflow.config import AugmentConfig, LoaderConfig
from doughflow.preprocessing import Preprocessing
from doughflow.training.streaming import (
    BadRowError,
    CorruptShardError,
    ParquetStream,
    ShardRef,
    assign_pieces,
    make_loader,
    plan_pieces,
    worker_skips,
)
from tests.support.sample_data import pizza_columns


@given(
    st.lists(st.integers(1, 500), min_size=1, max_size=6),
    st.integers(1, 100),
    st.integers(0, 50),
    st.integers(1, 4),
    st.integers(0, 3),
)
def test_pieces_are_dealt_exactly_once(rows, piece_rows, epoch, world, workers):
    shards = [ShardRef(f"s{i}", n) for i, n in enumerate(rows)]
    pieces = plan_pieces(shards, piece_rows)
    assert sum(p.rows for p in pieces) == sum(rows)
    dealt = assign_pieces(pieces, seed=3, epoch=epoch, shuffle=True, world_size=world, num_workers=workers)
    flat = [p for rank in dealt for worker in rank for p in worker]
    assert sorted(flat, key=lambda p: (p.shard, p.start)) == sorted(pieces, key=lambda p: (p.shard, p.start))
    assert dealt == assign_pieces(pieces, seed=3, epoch=epoch, shuffle=True, world_size=world, num_workers=workers)


@given(st.lists(st.integers(0, 20), min_size=1, max_size=5), st.data())
def test_worker_skips_follow_round_robin(counts, data):
    done = data.draw(st.integers(0, sum(counts)))
    skips = worker_skips(counts, done)
    assert sum(skips) == done and all(0 <= s <= c for s, c in zip(skips, counts))
    # the DataLoader's order: cycle over workers that still have batches
    order = []
    left = list(counts)
    while any(left):
        for w in range(len(left)):
            if left[w]:
                order.append(w)
                left[w] -= 1
    assert skips == [order[:done].count(w) for w in range(len(counts))]


def _stream(shards, **kwargs):
    loader = LoaderConfig(**{"num_workers": 2, "piece_rows": 30, "shuffle_buffer": 50, **kwargs.pop("loader", {})})
    kwargs.setdefault("augment_cfg", AugmentConfig(brightness=0.2))
    return ParquetStream(
        shards,
        pizza_columns(),
        Preprocessing(64),
        batch_size=kwargs.pop("batch_size", 16),
        loader=loader,
        seed=5,
        **kwargs,
    )


def _epoch(stream, epoch, skip=0):
    stream.set_epoch(epoch, skip)
    return list(make_loader(stream, stream.loader, torch.device("cpu")))


def test_epoch_is_deterministic_and_resume_skips_to_the_same_batches(tiny_shards):
    stream = _stream(tiny_shards[:2])
    full = _epoch(stream, 1)
    assert len(full) == stream.steps_per_epoch(1) == sum(stream.counts(1)[0])
    ids = [i for b in full for i in b["ids"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 200 - 2 * 16
    again = _epoch(stream, 1)
    assert [b["ids"] for b in again] == [b["ids"] for b in full]
    assert all(torch.equal(a["images"], b["images"]) for a, b in zip(again, full))
    other = _epoch(stream, 2)
    assert [b["ids"] for b in other] != [b["ids"] for b in full]
    for skip in (1, 5, len(full) - 1):
        tail = _epoch(stream, 1, skip)
        assert [b["ids"] for b in tail] == [b["ids"] for b in full[skip:]]
        assert all(torch.equal(a["images"], b["images"]) for a, b in zip(tail, full[skip:]))


def test_ranks_split_the_data_and_agree_on_step_count(tiny_shards):
    ranks = [_stream(tiny_shards[:2], rank=r, world_size=2) for r in range(2)]
    steps = {s.steps_per_epoch(0) for s in ranks}
    assert len(steps) == 1
    seen = [set(i for b in _epoch(s, 0) for i in b["ids"]) for s in ranks]
    assert not seen[0] & seen[1]


def test_validation_stream_keeps_every_row_in_order(tiny_shards):
    stream = _stream(tiny_shards[2:], shuffle=False, augment_cfg=None, drop_remainder=False, loader={"num_workers": 0})
    batches = _epoch(stream, 0)
    assert sum(len(b["ids"]) for b in batches) == tiny_shards[2].rows


def test_corrupt_shard_names_the_file(tiny_shards, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all" * 50)
    stream = _stream([ShardRef(str(bad), 100)], loader={"num_workers": 1})
    with pytest.raises(CorruptShardError, match="bad.parquet"):
        _epoch(stream, 0)


def test_checksum_mismatch_names_the_file(tiny_shards, tmp_path):
    copy = tmp_path / "copy.parquet"
    shutil.copy(tiny_shards[0].path, copy)
    stream = _stream([ShardRef(str(copy), 100, "0" * 64)], loader={"num_workers": 0})
    with pytest.raises(CorruptShardError, match="copy.parquet.*sha256"):
        _epoch(stream, 0)


def _with_bad_image(src: ShardRef, tmp_path) -> ShardRef:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(src.path)
    images = table.column("image").to_pylist()
    images[7] = b"\x89PNG broken"
    table = table.set_column(table.schema.get_field_index("image"), "image", pa.array(images, pa.binary()))
    path = tmp_path / "badrow.parquet"
    pq.write_table(table, path)
    return ShardRef(str(path), table.num_rows)


def test_bad_row_fails_naming_shard_row_and_id(tiny_shards, tmp_path):
    shard = _with_bad_image(tiny_shards[0], tmp_path)
    stream = _stream([shard], shuffle=False, loader={"num_workers": 0})
    with pytest.raises(BadRowError, match=r"badrow.parquet row 7 \(id"):
        _epoch(stream, 0)


def test_bad_row_skipped_and_counted_when_configured(tiny_shards, tmp_path):
    shard = _with_bad_image(tiny_shards[0], tmp_path)
    stream = _stream([shard], loader={"num_workers": 0, "on_bad_row": "skip"}, drop_remainder=False)
    batches = _epoch(stream, 0)
    assert sum(len(b["ids"]) for b in batches) == 99
    assert batches[-1]["bad_rows"] == 1
    strict = _stream([shard], loader={"num_workers": 0, "on_bad_row": "skip", "max_bad_rows": 0})
    with pytest.raises(BadRowError, match="max_bad_rows"):
        _epoch(strict, 0)
