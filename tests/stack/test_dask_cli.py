"""The compose stack's Dask services, natively: `dask scheduler` and `dask worker` exactly as
docker-compose.yml runs them (on loopback, TLS with the stack's certificates). The scheduler refuses
every peer without a certificate from the stack's CA, and the data stage computes on that cluster,
with the compose worker's Dask client settings, giving the same row counts as on a LocalCluster."""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path

import pytest

from doughflow.config import load_config
from doughflow.stack.certificates import write_certificates
from tests.support.compose import (
    CONTAINER_CERTS,
    free_port,
    port_open,
    service_command,
    service_environment,
    stack_secrets,
    start,
    stop,
    wait_until,
)
from tests.support.configs import TINY_OVERRIDES


@pytest.fixture
def dask_scheduler(tmp_path):
    """The dask-scheduler service's command, with free ports and certificates made for this test.
    Yields (scheduler port, certificate files, the compose worker's environment)."""
    certificates = write_certificates(tmp_path / "certs")
    ports = {8786: free_port(), 8787: free_port()}
    paths = {CONTAINER_CERTS: tmp_path / "certs"}
    log = tmp_path / "scheduler.log"
    scheduler = start(service_command("dask-scheduler", ports, paths), log)
    try:
        wait_until(port_open(ports[8786]), scheduler, log, "dask scheduler")
        yield ports, paths, certificates
    finally:
        stop(scheduler)


def client_settings(environment: dict[str, str]) -> dict[str, str]:
    """Dask config from the DASK_* variables of a compose service's environment, as Dask reads them
    at import (``DASK_A__B_C`` is ``a.b_c``); this process imported Dask before the test began."""
    return {key[5:].lower().replace("__", "."): value for key, value in environment.items() if key.startswith("DASK_")}


@pytest.fixture
def dask_cluster(dask_scheduler, tmp_path):
    """A compose dask-worker joined to the scheduler. Yields (address, the compose worker's Dask
    client settings)."""
    import dask
    from distributed import Client

    ports, paths, _ = dask_scheduler
    worker = start(service_command("dask-worker", ports, paths), tmp_path / "worker.log")
    try:
        environment = service_environment("worker", stack_secrets(), ports, paths)
        address = environment["DOUGHFLOW_DASK_ADDRESS"]
        assert address == f"tls://127.0.0.1:{ports[8786]}"
        with dask.config.set(client_settings(environment)), Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
        yield address, client_settings(environment)
    finally:
        stop(worker)


def _tls_handshake(port: int, ca: Path, certificate: tuple[Path, Path] | None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # as Dask: the chain is checked, not the host name
    if certificate:
        context.load_cert_chain(*certificate)
    connection = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30))
    return connection


def test_the_scheduler_refuses_peers_without_the_stacks_certificate(dask_scheduler, tmp_path):
    ports, _, certificates = dask_scheduler
    port, ca = ports[8786], certificates["ca"]
    other_ca = write_certificates(tmp_path / "other")

    # In TLS 1.3 the server judges the client's certificate after the client's side of the
    # handshake: the refusal is the alert that arrives on the first read.
    with _tls_handshake(port, ca, None) as connection, pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        connection.recv(1)
    with (
        _tls_handshake(port, ca, (other_ca["client_cert"], other_ca["client_key"])) as connection,
        pytest.raises(ssl.SSLError, match="UNKNOWN_CA"),
    ):
        connection.recv(1)
    # Plain TCP (a `tcp://` Dask client) gets no answer: the connection is dropped.
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        plain.sendall(b"\x00" * 64)
        with contextlib.suppress(ConnectionResetError):
            assert plain.recv(1) == b""
    # A scheduler that presents a certificate from another CA is refused by the client in turn.
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_handshake(port, other_ca["ca"], (other_ca["client_cert"], other_ca["client_key"]))
    # The stack's own client certificate completes the handshake.
    with _tls_handshake(port, ca, (certificates["client_cert"], certificates["client_key"])) as connection:
        assert connection.version() == "TLSv1.3"


@pytest.mark.slow
def test_data_stage_on_the_compose_dask_cluster(prefect_api, dask_cluster, tiny_source, tmp_path):
    import dask
    from distributed import Client

    from flows.prepare import prepare

    address, settings = dask_cluster

    def run(folder: str, address: str | None) -> dict:
        # cache off: the second run must compute, not reuse the first's results
        overrides = [
            *TINY_OVERRIDES,
            f"data.source.url={tiny_source}",
            "orchestration.cache=false",
            f"artifacts_dir={tmp_path / folder}",
            f"dask.address={address or 'null'}",
        ]
        return prepare(config=load_config(None, overrides))

    local = run("local", None)
    with dask.config.set(settings):
        remote = run("remote", address)

        assert remote["rows"] == local["rows"]
        assert remote["rows"]["split_train"] > 0 and remote["rows"]["quarantined"] > 0
        with Client(address) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
            prefixes = client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
    # The compose worker (one process, 2 threads) ran the subsample graph: its own functions are
    # among the scheduler's task prefixes.
    assert len(executed) == 1 and sum(executed.values()) > 0, executed
    assert {"sketch_shard", "exact_part"} <= set(prefixes), prefixes
