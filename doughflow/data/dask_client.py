"""Where data stages compute: an existing Dask cluster (config ``dask.address`` or DOUGHFLOW_DASK_ADDRESS) or a LocalCluster
of worker processes on the loopback interface that lives only as long as the stage. A ``tls://``
cluster (the compose stack's) takes its client certificate from Dask's own config, the
DASK_DISTRIBUTED__COMM__TLS__* variables: nothing to pass here.

Stages build their Dask graph themselves and submit it to this client (not through Prefect's
DaskTaskRunner, where a task computes on one worker and finished tasks recompute when a worker dies).

Dask's dashboard shows what a long data stage is doing (task stream, memory per worker); the stage
logs its link, so it shows in the flow run's logs. It has no login, so a LocalCluster's always listens
on 127.0.0.1 (``dask.dashboard_port``; from elsewhere: ``ssh -L``). Measured here: it adds ~0.05 s to
starting an in-process cluster once bokeh is imported (the import itself: ~2 s once per process). The scheduler starts an HTTP server (health,
metrics) even with the dashboard off, on the machine's network address unless told otherwise, so the
address is always passed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from doughflow.config import DaskConfig
from doughflow.data.progress import StageProgress

log = logging.getLogger(__name__)


def in_process(config: DaskConfig, rows: int | None) -> bool:
    """Small data on no given cluster: threads in this process. A LocalCluster of processes took
    ~25 s to start, shuffle and close for the 6.4k-row pizza set, longer than its work."""
    return not config.scheduler_address() and rows is not None and rows < config.in_process_below_rows


def _check_tls_settings(address: str) -> None:
    """A ``tls://`` scheduler (the compose stack's) accepts only clients that show a certificate
    from its CA; Dask takes them from its config. Without them Dask fails deep in the connection
    with a message about an SSL context: say what to set instead."""
    import dask

    if not address.startswith("tls://"):
        return
    settings = {
        name: dask.config.get(f"distributed.comm.tls.{name}", None) for name in ("ca-file", "client.cert", "client.key")
    }
    if missing := [name for name, value in settings.items() if not value]:
        variables = ", ".join(
            "DASK_DISTRIBUTED__COMM__TLS__" + name.upper().replace("-", "_").replace(".", "__") for name in missing
        )
        raise ValueError(
            f"the Dask scheduler {address} needs TLS client settings: set {variables} "
            "(the stack's certificates; README 'The stack: docker compose up')"
        )


@contextlib.contextmanager
def dask_client(config: DaskConfig, rows: int | None = None) -> Iterator[Any]:
    """A client for ``config``; ``rows``, when given, lets small stages skip worker
    processes (see ``in_process``). Same graph and same results either way."""
    import dask
    from distributed import Client, LocalCluster

    settings: dict[str, Any] = {
        "distributed.worker.daemon": False,
        "dataframe.convert-string": False,
        # the statistical profiler feeds only the dashboard (off here) and its history grows
        # with run time: tens of MB per worker on a long stage
        "distributed.worker.profile.enabled": False,
    }
    if config.local_directory:
        settings["temporary-directory"] = config.local_directory
    if config.shuffle_method != "auto":
        settings["dataframe.shuffle.method"] = config.shuffle_method
    with dask.config.set(settings):
        if address := config.scheduler_address():
            log.info("using the Dask cluster at %s", address)
            _check_tls_settings(address)
            with Client(address) as client:
                _log_dashboard(client)
                yield client
            return
        # the in-process worker's own HTTP server binds to 127.0.0.1 too (its host is not settable for inproc://)
        web = {
            "dashboard_address": f"127.0.0.1:{config.dashboard_port or 0}",
            "worker_dashboard_address": "127.0.0.1:0",
            "scheduler_kwargs": {"dashboard": config.dashboard_port is not None},
        }
        if in_process(config, rows):
            log.info(
                "%d rows: computing on an in-process cluster of %d threads",
                rows,
                config.n_workers * config.threads_per_worker,
            )
            cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=config.n_workers * config.threads_per_worker,
                processes=False,
                memory_limit=None,
                local_directory=config.local_directory,
                **web,
            )
        else:
            cluster = LocalCluster(
                n_workers=config.n_workers,
                threads_per_worker=config.threads_per_worker,
                processes=True,
                host="127.0.0.1",
                memory_limit=config.memory_limit,
                local_directory=config.local_directory,
                **web,
            )
        try:
            with Client(cluster) as client:
                port = cluster.scheduler_info.get("services", {}).get("dashboard")  # the HTTP server's port
                if config.dashboard_port is not None and port:
                    log.info("Dask dashboard: http://127.0.0.1:%s/status", port)
                yield client
        finally:
            cluster.close()


def _log_dashboard(client: Any) -> None:
    """A given cluster's dashboard link, as its scheduler names it (the stack's: published on the host's
    127.0.0.1:8787)."""
    if link := client.dashboard_link:
        log.info("Dask dashboard: %s", link)


def gather(client: Any, futures: Sequence[Any], progress: StageProgress, phase: str) -> list:
    """``client.gather(futures)`` in their order, while ``phase`` of ``progress`` advances as each one
    finishes (in whatever order they finish). A failed future raises from the gather, as before."""
    from distributed import as_completed

    progress.start(phase, len(futures))
    for _ in as_completed(futures):
        progress.advance()
    return client.gather(list(futures))
