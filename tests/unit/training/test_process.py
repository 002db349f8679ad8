"""Process set-up: a rendezvous of its own when alone, the launcher's when launched, seeds and threads set.

The environment checks run in a fresh interpreter: this test process may already have joined a
process group (the engine tests do), after which the set-up rightly leaves the environment alone.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from doughflow.training.process import (
    configure_determinism,
    free_port,
    resolve_device,
    seed_everything,
    training_threads,
    usable_cores,
)
from tests.support.configs import tiny_train_config

ROOT = Path(__file__).resolve().parents[3]

CHILD = r"""
import json, os, sys, torch
from doughflow.training.process import ensure_single_process_env, set_up_process
from tests.support.configs import tiny_train_config

out = {}
os.environ.update(LOCAL_WORLD_SIZE="2", RANK="1", WORLD_SIZE="2", MASTER_PORT="29501")
ensure_single_process_env()
out["launched"] = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "MASTER_PORT")}
del os.environ["LOCAL_WORLD_SIZE"]
os.environ["MASTER_PORT"] = "1"  # inherited from a parent: must not be reused
ensure_single_process_env()
out["alone"] = {k: os.environ[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
context = set_up_process(tiny_train_config(seed=123, num_threads=1, device="cpu"))
out["context"] = [context.rank, context.world_size, context.local_rank, str(context.device), context.is_main]
out["seed"], out["threads"] = torch.initial_seed(), torch.get_num_threads()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def child_env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "RANK",
            "LOCAL_RANK",
            "WORLD_SIZE",
            "MASTER_ADDR",
            "MASTER_PORT",
            "LOCAL_WORLD_SIZE",
            "TORCHELASTIC_RUN_ID",
        )
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_launched_rank_keeps_the_launchers_rendezvous(child_env):
    assert child_env["launched"] == {"RANK": "1", "WORLD_SIZE": "2", "MASTER_PORT": "29501"}


def test_a_process_alone_gets_rank_zero_on_loopback_and_a_fresh_port(child_env):
    alone = child_env["alone"]
    assert {k: alone[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR")} == {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
    }
    assert alone["MASTER_PORT"] != "1" and 0 < int(alone["MASTER_PORT"]) < 65536


def test_set_up_process_seeds_and_pins_threads(child_env):
    assert child_env["context"] == [0, 1, 0, "cpu", True]
    assert child_env["seed"] == 123 and child_env["threads"] == 1


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda") == torch.device("cuda")  # asked for: a missing GPU fails where it is used
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


def test_seed_everything_repeats_python_numpy_and_torch_draws():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(5)
    first = draws()
    seed_everything(5)
    assert draws() == first
    seed_everything(6)
    assert draws() != first


def test_thread_count_is_set_never_inherited(monkeypatch):
    """The same config trains with the same thread count whatever the process had before (an earlier
    in-process job with num_threads=1 used to leave 1 behind for the next num_threads=0 job)."""
    before = torch.get_num_threads()
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_SIZE", raising=False)
    try:
        configure_determinism(tiny_train_config(num_threads=1), torch.device("cpu"))
        assert torch.get_num_threads() == 1
        configure_determinism(tiny_train_config(num_threads=0), torch.device("cpu"))
        assert torch.get_num_threads() == training_threads(tiny_train_config(num_threads=0)) == usable_cores()
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(usable_cores() + 1))  # more ranks on this host than cores
        assert training_threads(tiny_train_config(num_threads=0)) == 1
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
        assert training_threads(tiny_train_config(num_threads=3)) == 3
    finally:
        torch.set_num_threads(before)
