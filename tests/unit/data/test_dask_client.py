"""The data stages' Dask client: a tls:// scheduler without client certificates fails before any
connection, naming the settings to make."""

from __future__ import annotations

import dask
import distributed  # noqa: F401 - before dask.config.set below: see the note
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
    with dask.config.set({"distributed.comm.tls.ca_file": "/ca.pem", "distributed.comm.tls.client.cert": None,
                          "distributed.comm.tls.client.key": None}):
        with pytest.raises(ValueError) as refused, dask_client(config):
            pass
    assert "CA_FILE" not in str(refused.value) and "CLIENT__KEY" in str(refused.value)
