"""A real Prefect server and process worker on loopback, with the compose stack's API auth string:
the server refuses requests without it; deploy (the GPU deployment too, with its job variables),
trigger with a parameter override, wait for the run and check the bundle it wrote; kill a run
mid-training and resume it with `prefect flow-run retry`; open a report artifact in the server's UI in
a real browser and see its figures render."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from doughflow.config import ExperimentConfig
from doughflow.packaging.bundle import verify_bundle
from doughflow.registry import load_runs
from tests.support.browser import browser_page
from tests.support.compose import (
    ROOT,
    basic_auth,
    free_port,
    http_status,
    prefect_healthy,
    service_command,
    service_environment,
    stack_secrets,
    start,
    stop,
    wait_until,
)

PREFECT = [sys.executable, "-m", "prefect"]


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory):
    """The compose prefect-server and worker commands (`prefect server start`, `prefect worker start`)
    on loopback, with the auth string of a fresh .env: the server's from the compose prefect-server
    environment (on SQLite here, not the stack's Postgres), the clients' from the worker's."""
    home = tmp_path_factory.mktemp("prefect_server_home")
    secrets = stack_secrets()
    ports = {4200: free_port()}
    server_auth = service_environment("prefect-server", secrets)["PREFECT_SERVER_API_AUTH_STRING"]
    client = service_environment("worker", secrets, ports)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": client["PREFECT_API_URL"],
        "PREFECT_SERVER_API_AUTH_STRING": server_auth,
        "PREFECT_API_AUTH_STRING": client["PREFECT_API_AUTH_STRING"],
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The worker asks for scheduled runs every 2 s, not every 10: a run (and its retry) waited up to
        # 10 s each to be picked up, time this suite spent idle.
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PYTHONPATH": str(ROOT),
    }
    api = env["PREFECT_API_URL"]
    server_log = home / "server.log"
    server = start(service_command("prefect-server", ports), server_log, env)
    processes = [server]
    try:
        wait_until(prefect_healthy(api), server, server_log, "prefect server", timeout=180)
        for pool in ("doughflow", "doughflow-gpu"):  # as the compose deploy job makes them
            subprocess.run(
                [*PREFECT, "work-pool", "create", pool, "--type", "process"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
        deployed = subprocess.run(
            [*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        worker = start(service_command("worker"), home / "worker.log", env)
        processes.append(worker)
        yield env, home, worker
    finally:
        for process in reversed(processes):
            stop(process)


def _quick_config(name: str, artifacts: Path, **train) -> dict:
    return {
        "name": name,
        "artifacts_dir": str(artifacts),
        "data": {"source": {"generator": {"num_images": 250, "num_customers": 50}}},
        "train": {"epochs": 1, "micro_batch_size": 32, **train},
        "evaluate": {"min_exact_count_accuracy": 0, "worst_examples": 2},
        # A 1-epoch model is not releasable; here we test the orchestration, not the gates.
        "release": {
            "properties": {"examples": 3, "max_failure_rate": 1.0},
            "quantization": {"calibration_samples": 16, "latency_repeats": 2},
        },
    }


def _api_get(env: dict, path: str) -> dict:
    request = urllib.request.Request(
        f"{env['PREFECT_API_URL']}/{path}", headers=basic_auth(env["PREFECT_API_AUTH_STRING"])
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _flow_run_state(env: dict, flow_run_id: str) -> str:
    return _api_get(env, f"flow_runs/{flow_run_id}")["state"]["type"]


@pytest.mark.slow
def test_the_gpu_deployment_is_registered_on_its_pool_with_job_variables(prefect_stack):
    env, _, _ = prefect_stack
    deployment = _api_get(env, "deployments/name/train/pizza-gpu")
    assert deployment["work_pool_name"] == "doughflow-gpu"
    assert deployment["job_variables"]["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert deployment["job_variables"]["env"]["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    config = ExperimentConfig.model_validate(deployment["parameters"]["config"])  # the flow accepts it as is
    assert (config.train.device, config.train.precision, config.train.model.name) == ("cuda", "bf16", "resnet")
    assert _api_get(env, "deployments/name/train/pizza")["work_pool_name"] == "doughflow"
    listed = subprocess.run(
        [*PREFECT, "deployment", "ls"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert "train/pizza" in listed.stdout and "train/pizza-quick" in listed.stdout


# Publishes a real report (a matplotlib figure beside report.md) as the flow's report artifact; prints its id.
PUBLISH_REPORT = """
import sys
from pathlib import Path
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from doughflow.config import load_config
from doughflow.reporting.plots import loss_curve
from doughflow.reporting.report import ReportFiles
from doughflow.stages.report import publish_report

folder = Path(sys.argv[1])
folder.mkdir(parents=True, exist_ok=True)
loss_curve({"step_loss": [3.0, 2.0, 1.5, 1.2], "epoch": [{"epoch": 1, "train_loss": 2.0, "val_mae": 0.5,
            "val_exact_count_accuracy": 0.4}]}, folder / "loss_curve.png")
(folder / "report.md").write_text("# browser probe\\n\\n![loss curve](loss_curve.png)\\n")

@flow(name="ui-probe")
def publish():
    publish_report(load_config(None, ["name=ui-probe"]), ReportFiles(str(folder / "report.md"), "", ["loss_curve.png"]), "probe-run")

publish()
with get_client(sync_client=True) as client:
    found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ui-probe-report"])))
print(found[0].id)
"""


@pytest.mark.slow
def test_the_report_artifact_shows_its_figures_in_the_prefect_ui(prefect_stack, tmp_path):
    """Logged in with the auth string as a user would, the artifact page of the report draws its loss
    curve: the figure travels in the artifact as a data URI, and the page asks nothing of the network."""
    env, _, _ = prefect_stack
    made = subprocess.run(
        [sys.executable, "-c", PUBLISH_REPORT, str(tmp_path / "report")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-3000:]
    artifact_id = made.stdout.strip().splitlines()[-1]
    ui = env["PREFECT_API_URL"].removesuffix("/api")
    with browser_page(tmp_path) as (page, requests, _errors):
        page.goto(f"{ui}/artifacts/artifact/{artifact_id}")
        page.wait_for_selector("input[type=password]", timeout=120_000)  # the UI asks for the auth string
        page.fill("input[type=password]", env["PREFECT_API_AUTH_STRING"])
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "/login" not in url, timeout=120_000)
        page.goto(f"{ui}/artifacts/artifact/{artifact_id}")
        image = page.wait_for_selector("img[alt='loss curve']", timeout=120_000)
        page.wait_for_function("e => e.complete && e.naturalWidth > 0", arg=image, timeout=60_000)
        width, height, source = page.evaluate("e => [e.naturalWidth, e.naturalHeight, e.src.slice(0, 22)]", image)
    assert (width, height) == (1000, 640) and source == "data:image/png;base64,"  # the figure as saved, drawn
    outside = [url for url in requests if not url.startswith((ui, "data:", "blob:" + ui))]
    assert outside == [], outside


@pytest.mark.slow
def test_the_server_refuses_requests_without_the_auth_string(prefect_stack):
    env, _, _ = prefect_stack
    api, auth = env["PREFECT_API_URL"], env["PREFECT_API_AUTH_STRING"]
    user, password = auth.split(":", 1)
    for headers in [
        {},
        basic_auth(f"{user}:wrong-{password}"),
        basic_auth(f"{user}:"),
        {"Authorization": f"Bearer {password}"},
    ]:
        assert http_status(f"{api}/deployments/name/train/pizza", headers) == 401, headers
        assert http_status(f"{api}/work_pools/", headers, method="POST") == 401, headers
    assert http_status(f"{api}/deployments/name/train/pizza", basic_auth(auth)) == 200
    # Only the health probe answers without it.
    assert http_status(f"{api}/health") == 200
    # The CLI without PREFECT_API_AUTH_STRING cannot list deployments either.
    anonymous = {key: value for key, value in env.items() if key != "PREFECT_API_AUTH_STRING"}
    listed = subprocess.run(
        [*PREFECT, "deployment", "ls"], cwd=ROOT, env=anonymous, capture_output=True, text=True, timeout=120
    )
    assert listed.returncode != 0 and "train/pizza" not in listed.stdout


@pytest.mark.slow
def test_a_path_like_run_id_parameter_is_refused_by_the_server(prefect_stack):
    """The flow's parameter schema carries the run-id pattern; the server enforces it when the run is
    created, so a path-like id never reaches a worker (the flow's own check would refuse it there too)."""
    env, _, _ = prefect_stack
    for bad in ("../escape", "a/b", "run..id"):
        run = subprocess.run(
            [*PREFECT, "deployment", "run", "train/pizza-quick", "--param", f"run_id={json.dumps(bad)}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode != 0 and "run_id" in run.stdout + run.stderr, run.stdout + run.stderr
        assert "UUID:" not in run.stdout


@pytest.mark.slow
def test_killed_deployment_run_resumes_with_flow_run_retry(prefect_stack, tmp_path):
    """A deployment run through a worker, as a user starts one (`prefect deployment run`), and kill -9
    of the worker's flow process in the middle of training, then `prefect flow-run retry`: the same
    flow run (so the same run folder) is picked up by the worker again, every stage before training
    comes back cached, training continues from its checkpoint, and the run ends with a verified bundle.
    (This is also the suite's plain deployment run: one more through the worker cost 60 s of it.)"""
    env, home, worker_process = prefect_stack
    worker_log = home / "worker.log"
    config = _quick_config("retry", tmp_path, epochs=3, checkpoint_every_steps=2)
    created = subprocess.run(
        [*PREFECT, "deployment", "run", "train/pizza-quick", "--param", f"config={json.dumps(config)}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", created.stdout).group(1)

    def checkpoints() -> list[Path]:
        return list(tmp_path.glob("retry-*/train/checkpoints/*/"))

    wait_until(lambda: len(checkpoints()) >= 2, worker_process, worker_log, "two training checkpoints", 600)
    # The flow process and whatever it started (DataLoader workers come and go each epoch): its
    # whole process group, or every descendant where it shares the worker's group.
    worker = psutil.Process(worker_process.pid)
    log_before_kill = len(worker_log.read_text())
    flow_processes = worker.children()
    assert flow_processes, "the worker runs no flow process"
    for process in flow_processes:
        group = os.getpgid(process.pid)
        if group != os.getpgid(worker.pid):
            os.killpg(group, signal.SIGKILL)
        for child in [process, *process.children(recursive=True)]:
            child.send_signal(signal.SIGKILL)

    # The flow's runner reports the crash; then the worker itself proposes Crashed too, some seconds
    # later (after the runner's hooks), and logs under prefect.flow_runs.worker. A retry before that
    # second proposal would be overwritten by it, so wait for the worker's line.
    def worker_done() -> bool:
        return "prefect.flow_runs.worker - " in worker_log.read_text()[log_before_kill:]

    wait_until(
        lambda: _flow_run_state(env, flow_run_id) == "CRASHED" and worker_done(),
        worker_process,
        worker_log,
        "the worker finishing the killed flow run",
        120,
    )
    run_dirs = list(tmp_path.glob("retry-*"))
    assert len(run_dirs) == 1 and not (run_dirs[0] / "train" / "result.json").exists()

    retried = subprocess.run(
        [*PREFECT, "flow-run", "retry", flow_run_id], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert retried.returncode == 0, retried.stdout + retried.stderr
    wait_until(
        lambda: _flow_run_state(env, flow_run_id) in ("COMPLETED", "FAILED", "CRASHED"),
        worker_process,
        worker_log,
        "the retried run's end",
        600,
    )
    assert _flow_run_state(env, flow_run_id) == "COMPLETED", worker_log.read_text()[-3000:]

    assert list(tmp_path.glob("retry-*")) == run_dirs  # the run id follows the flow run: same folder
    trained = json.loads((run_dirs[0] / "train" / "result.json").read_text())
    assert trained["resumed_from_step"] > 0 and len(trained["history"]["epoch"]) == 3
    assert verify_bundle(run_dirs[0] / "bundle") == []
    assert json.loads((run_dirs[0] / "bundle" / "manifest.json").read_text())["experiment"] == "retry"
    # The data sub-flow completed in the killed attempt, so the retry reused it whole.
    states = load_runs(tmp_path / "registry.sqlite")[-1].stage_states
    assert all(states[stage].endswith("(earlier attempt)") for stage in ("fetch", "validate", "subsample", "split")), (
        states
    )
    assert states["train"] == "Completed", states
