"""The data stages' Dask client: a tls:// scheduler without client certificates fails before any
connection, naming the settings to make."""

from __future__ import annotations

import dask

# Imported first for its config defaults: a dask.config.set made before distributed is imported deletes
# the whole "distributed" section on exit, which broke every later cluster in the process.
import distributed  # noqa: F401
import pytest

from doughflow.config import load_config
from doughflow.data.dask_client import dask_client

TLS = ("ca_file", "client.cert", "client.key")

# Note: distributed adds its config defaults when first imported. Imported inside a dask.config.set
# that names distributed.comm.* keys, the set's undo then deletes the whole distributed.comm section,
# and every later LocalCluster in the process fails with KeyError: 'comm' (tests/flows/test_tune_flow.py
# did, after this file, on the same xdist worker). Importing it first keeps the undo to these keys.


def test_a_tls_scheduler_without_client_settings_names_them():
    config = load_config(None, ["dask.address=tls://127.0.0.1:9"]).dask
    with dask.config.set({f"distributed.comm.tls.{name}": None for name in TLS}):
        with pytest.raises(ValueError, match="DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"), dask_client(config):
            pass
    # One setting given: only the others are named.
    with dask.config.set(
        {
            "distributed.comm.tls.ca_file": "/ca.pem",
            "distributed.comm.tls.client.cert": None,
            "distributed.comm.tls.client.key": None,
        }
    ):
        with pytest.raises(ValueError) as refused, dask_client(config):
            pass
    assert "CA_FILE" not in str(refused.value) and "CLIENT__KEY" in str(refused.value)


def _listening() -> set[tuple[str, int]]:
    import psutil

    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


@pytest.mark.parametrize("rows", [10, None])  # an in-process cluster, and one of worker processes
def test_the_dashboard_listens_on_loopback_only_and_its_link_is_logged(caplog, rows):
    import logging
    import urllib.request

    from doughflow.data.dask_client import gather
    from doughflow.data.progress import StageProgress

    config = load_config(None, ["dask.dashboard_port=0", "dask.n_workers=1"]).dask
    before = _listening()  # what other tests in this process left listening is not the cluster's
    with caplog.at_level(logging.INFO, logger="doughflow.data.dask_client"), dask_client(config, rows=rows) as client:
        links = [
            r.getMessage().split(": ", 1)[1] for r in caplog.records if r.getMessage().startswith("Dask dashboard: ")
        ]
        assert len(links) == 1 and links[0].startswith("http://127.0.0.1:"), links
        with urllib.request.urlopen(links[0], timeout=30) as page:
            assert page.status == 200
        assert {ip for ip, _ in _listening() - before} == {"127.0.0.1"}
        progress = StageProgress(["sketching"], disable=True)
        assert gather(client, client.map(lambda x: x + 1, range(5)), progress, "sketching") == [1, 2, 3, 4, 5]
        assert progress.fraction() == 1.0
    caplog.clear()
    off = load_config(None, ["dask.dashboard_port=null"]).dask
    with caplog.at_level(logging.INFO, logger="doughflow.data.dask_client"), dask_client(off, rows=10):
        assert not any("Dask dashboard" in r.getMessage() for r in caplog.records)
        assert {ip for ip, _ in _listening() - before} <= {"127.0.0.1"}  # the scheduler's health endpoint too
