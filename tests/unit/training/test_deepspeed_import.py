"""DeepSpeed is imported without MLflow when nothing else wants it, and MLflow still imports after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, sys, threading, time
warming = sys.argv[1] == "warming"
if warming:  # what doughflow/tracking/store.py's warm-up does when a tracked run starts
    from doughflow.tracking.store import WARM_UP_THREAD
    def warm_up():
        import mlflow
        time.sleep(1)
    threading.Thread(target=warm_up, name=WARM_UP_THREAD, daemon=True).start()
from doughflow.training.deepspeed_import import import_deepspeed
deepspeed = import_deepspeed()
from deepspeed.autotuning import autotuner
after_deepspeed = "mlflow" in sys.modules and sys.modules["mlflow"] is not None
import mlflow
print(json.dumps({"mlflow_after_deepspeed": after_deepspeed, "autotuner_mlflow": autotuner.has_mlflow,
                  "mlflow_imports": hasattr(mlflow, "MlflowClient"), "initialize": callable(deepspeed.initialize)}))
"""


def _probe(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_deepspeed_leaves_mlflow_unimported_and_mlflow_imports_afterwards():
    found = _probe("alone")
    assert found == {
        "mlflow_after_deepspeed": False,
        "autotuner_mlflow": False,
        "mlflow_imports": True,
        "initialize": True,
    }


def test_a_warming_mlflow_import_is_left_alone():
    found = _probe("warming")
    assert found["mlflow_imports"] and found["initialize"]
    assert found["autotuner_mlflow"] is True  # DeepSpeed imported as it is, beside the warm-up's import
