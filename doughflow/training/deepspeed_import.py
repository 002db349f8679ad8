"""Importing DeepSpeed without the MLflow import it does not need.

DeepSpeed's autotuner, which doughflow never runs, tries ``import mlflow`` when the package is
imported, and MLflow is installed here (doughflow tracks runs with it). Measured on the 2-core dev
machine, best of 3 after torch: ``import deepspeed`` took 2.1-2.3 s with the MLflow import and 0.45 s
without it. Every training process pays it: a flow whose training runs in-process with tracking off,
and each rank a launcher starts (ranks never track; the flow process does). With tracking on, the
flow process imports MLflow anyway (its warm-up thread starts with the run), so nothing is lost.

The autotuner's import is refused by a ``None`` entry in ``sys.modules`` for as long as DeepSpeed's
own import runs, which Python documents as the way to make an import fail. That is only done while
no MLflow is imported or being imported: when the MLflow warm-up thread is alive, DeepSpeed is
imported as it is, so that thread's import can never see the refusal.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

from doughflow.tracking.store import WARM_UP_THREAD


def _mlflow_may_be_importing() -> bool:
    return "mlflow" in sys.modules or any(t.name == WARM_UP_THREAD for t in threading.enumerate())


def import_deepspeed() -> ModuleType:
    """``import deepspeed``, leaving MLflow unimported when nothing else in this process wants it."""
    if "deepspeed" in sys.modules or _mlflow_may_be_importing():
        import deepspeed

        return deepspeed
    sys.modules["mlflow"] = None  # type: ignore[assignment]  # ``import mlflow`` raises ImportError
    try:
        import deepspeed
    finally:
        if sys.modules.get("mlflow", False) is None:
            del sys.modules["mlflow"]
    return deepspeed
