"""A real Prefect server and process worker on loopback: deploy, trigger with a parameter
override, wait for the run and check the bundle it wrote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from doughflow.packaging.bundle import verify_bundle

ROOT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"prefect server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def _start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    # Own process group, so teardown kills the server's or worker's children too.
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory):
    """`prefect server start` and `prefect worker start` exactly as a user runs them, on loopback."""
    home = tmp_path_factory.mktemp("prefect_server_home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    server_log = home / "server.log"
    server = _start([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env, server_log)
    processes = [server]
    try:
        _wait_healthy(api, server, server_log)
        subprocess.run([*PREFECT, "work-pool", "create", "doughflow", "--type", "process"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=120)
        deployed = subprocess.run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        worker = _start([*PREFECT, "worker", "start", "--pool", "doughflow"], env, home / "worker.log")
        processes.append(worker)
        yield env, home
    finally:
        for process in reversed(processes):
            _stop(process)


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
