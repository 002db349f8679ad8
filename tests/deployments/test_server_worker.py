"""A real Prefect server and process worker on loopback: deploy, trigger with a parameter
override, wait for the run and check the bundle it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from doughflow.packaging.bundle import verify_bundle
from tests.stack.compose import ROOT, free_port, prefect_healthy, service_command, start, stop, wait_until

PREFECT = [sys.executable, "-m", "prefect"]


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory):
    """The compose prefect-server and worker commands (`prefect server start`, `prefect worker start`)
    on loopback."""
    home = tmp_path_factory.mktemp("prefect_server_home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    server_log = home / "server.log"
    server = start(service_command("prefect-server", {4200: port}), server_log, env)
    processes = [server]
    try:
        wait_until(prefect_healthy(api), server, server_log, "prefect server", timeout=180)
        subprocess.run([*PREFECT, "work-pool", "create", "doughflow", "--type", "process"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=120)
        deployed = subprocess.run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        worker = start(service_command("worker"), home / "worker.log", env)
        processes.append(worker)
        yield env, home
    finally:
        for process in reversed(processes):
            stop(process)


@pytest.mark.slow
def test_deployment_run_through_a_worker(prefect_stack, tmp_path):
    env, home = prefect_stack
    listed = subprocess.run([*PREFECT, "deployment", "ls"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "train/pizza" in listed.stdout and "train/pizza-quick" in listed.stdout
    config = {
        "name": "e2e", "artifacts_dir": str(tmp_path),
        "data": {"source": {"generator": {"num_images": 250, "num_customers": 50}}},
        "train": {"epochs": 1, "micro_batch_size": 32},
        "evaluate": {"min_exact_count_accuracy": 0, "worst_examples": 2},
        # A 1-epoch model is not releasable; here we test the orchestration, not the gates.
        "release": {"properties": {"examples": 3, "max_failure_rate": 1.0},
                    "quantization": {"calibration_samples": 16, "latency_repeats": 2}},
    }
    run = subprocess.run([*PREFECT, "deployment", "run", "train/pizza-quick", "--param", f"config={json.dumps(config)}",
                          "--watch", "--watch-timeout", "600"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=700)
    worker_log = (home / "worker.log").read_text()[-3000:]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:] + worker_log
    assert "Completed" in run.stdout
    bundles = list(tmp_path.glob("e2e-*/bundle"))
    assert len(bundles) == 1, worker_log
    assert verify_bundle(bundles[0]) == []
    written = json.loads((bundles[0] / "manifest.json").read_text())
    assert written["experiment"] == "e2e"
