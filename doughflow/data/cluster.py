"""Where data stages compute: an existing Dask cluster (config ``dask.address``) or a LocalCluster
of worker processes on the loopback interface that lives only as long as the stage.

Stages build their Dask graph themselves and submit it to this client (not through Prefect's
DaskTaskRunner, where a task computes on one worker and finished tasks recompute when a worker dies).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(config) -> Iterator["distributed.Client"]:  # noqa: F821
    import dask
    from distributed import Client, LocalCluster

    settings = {"distributed.worker.daemon": False,
                "dataframe.convert-string": False}
    if config.local_directory:
        settings["temporary-directory"] = config.local_directory
    with dask.config.set(settings):
        if config.address:
            log.info("using the Dask cluster at %s", config.address)
            with Client(config.address) as client:
                yield client
            return
        cluster = LocalCluster(n_workers=config.n_workers, threads_per_worker=config.threads_per_worker,
                               processes=True, host="127.0.0.1", dashboard_address=None,
                               memory_limit=config.memory_limit, local_directory=config.local_directory)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
