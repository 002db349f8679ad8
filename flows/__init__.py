"""Prefect flows: wiring of tasks, no logic. Run one with ``python -m flows.<name>``."""

import os

# Set before Prefect is imported, since it reads its settings then. A cold ephemeral API can take
# long to start on a 2-core machine (prefect#16397). (Library log lines reach the run's logs through
# doughflow.orchestration.logs, not PREFECT_LOGGING_EXTRA_LOGGERS.)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
