"""Prefect flows: wiring of tasks, no logic. Run one with ``python -m flows.<name>``."""

import os
import sys as _sys

from doughflow.orchestration.local_api import launched_flow_command as _launched_flow_command
from doughflow.orchestration.local_api import prestart as _prestart

# Set before Prefect is imported, since it reads its settings then. A cold ephemeral API can take
# long to start on a 2-core machine (prefect#16397). (Library log lines reach the run's logs through
# doughflow.orchestration.logs, not PREFECT_LOGGING_EXTRA_LOGGERS.)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# `python -m flows.train|prepare|tune` with no PREFECT_API_URL: start Prefect's temporary API now, so that
# it comes up while this process imports (doughflow.orchestration.local_api says why and what it saves).
if _launched_flow_command(_sys.orig_argv):
    _prestart()
