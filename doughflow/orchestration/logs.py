"""Library log lines in the flow run's logs: every ``doughflow.*``, ``tasks.*`` and ``flows.*`` record at
Prefect's log level (``PREFECT_LOGGING_LEVEL``, INFO by default) reaches the Prefect API and the console.

Why not ``PREFECT_LOGGING_EXTRA_LOGGERS``: it only copies Prefect's API handler onto the named loggers
when Prefect is imported, and leaves their level at the root's WARNING, so the stage's INFO lines
(rows removed, epochs, cache decisions) never arrived; a worker's flow-run process imports Prefect
before any of our code runs, so an environment variable set by ``flows/__init__.py`` came too late
there. Here the handler is attached when the stage tasks are defined (``stage_tasks`` imports this),
which every flow does in every process that runs one, and the level is set with it.

A record made outside a run context (a helper thread, a plain function in a test) goes to the flow
run the process was started for (``PREFECT__FLOW_RUN_ID``, set by a worker) or stays on the console,
without Prefect's "no flow run id" warning for each line.
"""

from __future__ import annotations

import logging
import os

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_LOGGING_LEVEL

LIBRARY_LOGGERS = ("doughflow", "tasks", "flows")


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, silent where no flow run can own the record."""

    def emit(self, record: logging.LogRecord) -> None:
        if (
            getattr(record, "flow_run_id", None) is None
            and FlowRunContext.get() is None
            and TaskRunContext.get() is None
        ):
            process_run = os.environ.get("PREFECT__FLOW_RUN_ID")
            if not process_run:
                return
            record.flow_run_id = process_run
        super().emit(record)


def route_library_logs() -> None:
    """Attach the run log handler to the library loggers and let their INFO lines through; idempotent.
    A logger that already carries an API handler (``PREFECT_LOGGING_EXTRA_LOGGERS``) keeps only that one,
    and a logger set more verbose than Prefect's level by the user keeps its level."""
    level = logging.getLevelName(str(PREFECT_LOGGING_LEVEL.value()).upper())
    level = level if isinstance(level, int) else logging.INFO
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
            logger.addHandler(RunLogHandler())
