"""The image data path at small scale: validation decodes each image once and stores what later steps
need (the same pixels as the decoder), the subsample stage never decodes again, its removals do not
depend on how rows are sharded or ordered, and a `dask scheduler` with two `dask worker` processes
removes exactly what an in-process cluster does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doughflow.config import DaskConfig, load_config
from doughflow.data import imagecodec
from doughflow.data.dask_client import dask_client
from doughflow.data.dedup.signals import (
    CONTENT_HASH,
    EMBEDDING,
    SIGNATURE,
    THUMBNAIL,
    SignalSpec,
    binary_matrix,
    compute_signals,
    content_hash,
    signals_for,
)
from doughflow.data.dedup.subsample import subsample
from doughflow.data.imagecodec import decode_image
from doughflow.data.manifest import DataManifest, ShardInfo
from doughflow.data.validate import validate_shards
from tests.support.compose import free_port, port_open, start, stop, wait_until
from tests.support.configs import PIZZA_COLUMNS as COLUMNS

ROWS_PER_SHARD = 100


def subsample_config(**cluster):
    overrides = [
        "data.subsample.max_per_id=20",
        "data.subsample.cluster.max_per_cluster=null",
        "data.subsample.cluster.max_over_mean=1.2",
        "data.subsample.cluster.n_clusters=6",
    ]
    return load_config(None, overrides + [f"data.subsample.cluster.{k}={v}" for k, v in cluster.items()]).data.subsample


def reshard(rows: pa.Table, folder: Path, per_shard: int) -> DataManifest:
    folder.mkdir(parents=True)
    shards = []
    for start_row in range(0, rows.num_rows, per_shard):
        path = folder / f"part-{start_row:05d}.parquet"
        pq.write_table(rows.slice(start_row, per_shard), path)
        shards.append(ShardInfo(str(path), min(per_shard, rows.num_rows - start_row), 0, ""))
    return DataManifest(str(folder), "f", rows.num_rows, shards, rows.schema.names)


@pytest.fixture(scope="module")
def tiny_rows(tiny_source) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(Path(tiny_source).glob("*.parquet"))])


def validated(rows: pa.Table, folder: Path, per_shard: int, cfg, client=None) -> DataManifest:
    raw = reshard(rows, folder / "raw", per_shard)
    return validate_shards(raw, folder / "valid", **COLUMNS, signals=signals_for(cfg), client=client).manifest


def removals(result) -> list[tuple[str, str, str]]:
    removed = pq.read_table(result.removed_path).to_pandas()
    return sorted(zip(removed["id"], removed["reason"], removed["kept_id"]))


def test_validation_stores_what_the_decoder_gives(tiny_rows, tmp_path):
    """Decode once: every valid row's pixel hash and signals equal those of ``decode_image`` of its bytes."""
    cfg = subsample_config()
    manifest = validated(tiny_rows, tmp_path, ROWS_PER_SHARD, cfg)
    table = pa.concat_tables([pq.read_table(p) for p in manifest.paths()])
    assert table.schema.metadata[b"doughflow.image_signals"] == SignalSpec.from_config(cfg).metadata()
    pixels = [decode_image(data) for data in table.column("image").to_pylist()]
    assert table.column(CONTENT_HASH).to_pylist() == [content_hash(p) for p in pixels]
    spec = SignalSpec.from_config(cfg)
    wanted = compute_signals(pixels, spec)
    widths = {SIGNATURE: spec.signature_bytes, THUMBNAIL: spec.thumb_size**2, EMBEDDING: 64}
    for name, width in widths.items():
        assert np.array_equal(binary_matrix(table.column(name), width), wanted[name]), name


def test_subsample_reads_stored_signals_and_never_decodes(tiny_rows, tmp_path, monkeypatch):
    cfg = subsample_config()
    manifest = validated(tiny_rows, tmp_path, ROWS_PER_SHARD, cfg)

    def refuse(data: bytes):
        raise AssertionError("an image was decoded a second time")

    monkeypatch.setattr(imagecodec, "decode_image", refuse)
    with dask_client(DaskConfig(), rows=manifest.rows) as client:  # in-process: the patch applies to its threads
        result = subsample(manifest, tmp_path / "out", cfg, client, id_column="sample_id", group_column="customer_id")
    truth = result.truth
    assert truth["recall"] == 1.0 and truth["precision"] == 1.0, truth
    assert result.rows_out + len(removals(result)) == result.rows_in
    kept = pa.concat_tables([pq.read_table(p) for p in result.manifest.paths()])
    assert not {SIGNATURE, THUMBNAIL, EMBEDDING} & set(kept.column_names)  # signals stop at the subsample stage
    sizes = result.cluster_sizes
    assert sizes["max_per_cluster"] == int(np.ceil(1.2 * sum(sizes["before"].values()) / sizes["n_clusters"]))
    assert max(sizes["after"].values()) <= sizes["max_per_cluster"] < max(sizes["before"].values())
    assert all(len(ids) > 0 for ids in sizes["examples"].values())


def in_process_removals(rows: pa.Table, folder: Path, per_shard: int) -> tuple[list, int]:
    cfg = subsample_config()
    manifest = validated(rows, folder, per_shard, cfg)
    with dask_client(DaskConfig(), rows=manifest.rows) as client:
        result = subsample(manifest, folder / "out", cfg, client, id_column="sample_id", group_column="customer_id")
    return removals(result), result.cluster_sizes["max_per_cluster"]


@pytest.fixture(scope="module")
def reference_removals(tiny_rows, tmp_path_factory) -> tuple[list, int]:
    return in_process_removals(tiny_rows, tmp_path_factory.mktemp("reference"), ROWS_PER_SHARD)


@settings(max_examples=2, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(per_shard=st.integers(30, 170), reverse=st.booleans())
def test_removals_do_not_depend_on_sharding_or_order(
    tiny_rows, reference_removals, tmp_path_factory, per_shard, reverse
):
    """Every choice is by content, id or seeded rank (k-means is fitted on its sample sorted by key)."""
    rows = tiny_rows.take(pa.array(np.arange(tiny_rows.num_rows)[::-1])) if reverse else tiny_rows
    assert in_process_removals(rows, tmp_path_factory.mktemp("partitioning"), per_shard) == reference_removals


@pytest.fixture
def dask_cli_cluster(tmp_path):
    """`dask scheduler` and two `dask worker` processes (one thread each) on loopback."""
    from distributed import Client

    from tests.support.compose import BIN

    port = free_port()
    dask = str(BIN / "dask")
    scheduler = start(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], tmp_path / "scheduler.log"
    )
    processes = [scheduler]
    try:
        wait_until(port_open(port), scheduler, tmp_path / "scheduler.log", "dask scheduler")
        address = f"tcp://127.0.0.1:{port}"
        for index in range(2):
            processes.append(
                start(
                    [
                        dask,
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--memory-limit",
                        "1GiB",
                    ],
                    tmp_path / f"worker-{index}.log",
                )
            )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


def test_scheduler_and_two_worker_processes_remove_what_a_local_cluster_does(tiny_rows, tmp_path, dask_cli_cluster):
    from distributed import Client

    cfg = subsample_config()
    outcomes = []
    for name, config in (
        ("local", DaskConfig(in_process_below_rows=0, memory_limit="1GiB")),
        ("cli", DaskConfig(address=dask_cli_cluster)),
    ):
        with dask_client(config, rows=tiny_rows.num_rows) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            manifest = validated(tiny_rows, tmp_path / name, ROWS_PER_SHARD, cfg, client)
            result = subsample(
                manifest, tmp_path / name / "out", cfg, client, id_column="sample_id", group_column="customer_id"
            )
        outcomes.append((manifest.rows, removals(result), result.rows_out))
    assert outcomes[0] == outcomes[1]
    with Client(dask_cli_cluster) as client:  # both workers took part: validation and sketches ran there
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert {"validate_shard", "sketch_shard", "band_part", "endpoint_thumbnails", "verify_part"} <= set(prefixes)
    assert len(executed) == 2 and all(count > 0 for count in executed.values()), executed
