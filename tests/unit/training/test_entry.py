"""A training process's entry point leaves its process group before exiting (a gloo group left to the
interpreter's finalization can abort the rank after its work is done)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from doughflow.preprocessing import Preprocessing
from doughflow.training.job import TrainJob
from tests.support.configs import tiny_train_config
from tests.support.sample_data import pizza_columns

ROOT = Path(__file__).resolve().parents[3]

CHILD = r"""
import json, sys
import torch.distributed as dist
from doughflow.training.entry import main
code = main([sys.argv[1]])
print(json.dumps({"code": code, "group_left": not dist.is_initialized()}))
"""


def test_a_finished_rank_exits_0_with_its_process_group_destroyed(tiny_shards, tmp_path):
    cfg = tiny_train_config(epochs=1, loader={"num_workers": 0})
    job = TrainJob(tiny_shards[:2], tiny_shards[2:], pizza_columns(), 5, cfg, Preprocessing(64), str(tmp_path / "run"))
    path = tmp_path / "job.json"
    path.write_text(job.to_json())
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 0, "group_left": True}
    assert (tmp_path / "run" / "result.json").exists()
