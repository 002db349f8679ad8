"""The compose stack's Dask services, natively: `dask scheduler` and `dask worker` exactly as
docker-compose.yml runs them (on loopback), and the data stage computing on that cluster with the
same row counts as on a LocalCluster."""

from __future__ import annotations

import pytest

from doughflow.config import load_config
from tests.support.configs import TINY_OVERRIDES
from tests.support.compose import free_port, port_open, service_command, start, stop, wait_until


@pytest.fixture
def dask_cluster(tmp_path):
    """The dask-scheduler and dask-worker services' commands, with free ports."""
    from distributed import Client

    port = free_port()
    ports = {8786: port, 8787: free_port()}
    scheduler = start(service_command("dask-scheduler", ports), tmp_path / "scheduler.log")
    processes = [scheduler]
    try:
        wait_until(port_open(port), scheduler, tmp_path / "scheduler.log", "dask scheduler")
        processes.append(start(service_command("dask-worker", ports), tmp_path / "worker.log"))
        address = f"tcp://127.0.0.1:{port}"
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.mark.slow
def test_data_stage_on_the_compose_dask_cluster(prefect_api, dask_cluster, tiny_source, tmp_path):
    from distributed import Client

    from flows.prepare import prepare

    def run(folder: str, address: str | None) -> dict:
        # cache off: the second run must compute, not reuse the first's results
        overrides = [*TINY_OVERRIDES, f"data.source.url={tiny_source}", "orchestration.cache=false",
                     f"artifacts_dir={tmp_path / folder}", f"dask.address={address or 'null'}"]
        return prepare(config=load_config(None, overrides))

    local = run("local", None)
    remote = run("remote", dask_cluster)

    assert remote["rows"] == local["rows"]
    assert remote["rows"]["split_train"] > 0 and remote["rows"]["quarantined"] > 0
    with Client(dask_cluster) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    # The compose worker (one process, 2 threads) ran the subsample graph: its own functions are
    # among the scheduler's task prefixes.
    assert len(executed) == 1 and sum(executed.values()) > 0, executed
    assert {"sketch_shard", "exact_part"} <= set(prefixes), prefixes
