"""Fault suite: kill -9 of the flow process inside a stage of every kind (every stage with
DOUGHFLOW_FAULT_STAGES=all), one after another on the same run,
then a rerun that completes with the same bundle (data fingerprint, model hash) as uninterrupted
runs; and two runs at once on one artifact store that do not touch each other's files.

All runs talk to one `prefect server start` (the compose `prefect-server` command, on SQLite, with
the stack's API auth string on), so a kill costs a process start and one stage, not a temporary API
server per run: every stage killed before is served from the cache.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doughflow.packaging.bundle import verify_bundle
from doughflow.registry import load_runs
from tests.support.compose import (
    free_port,
    prefect_healthy,
    service_command,
    service_environment,
    stack_secrets,
    start,
    stop,
    wait_until,
)
from tests.support.configs import DATA_STAGES, MODEL_STAGES, TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[2]
# Checkpoints every few steps so that a kill lands between two of them.
FAULT_OVERRIDES = [*TINY_OVERRIDES, "train.epochs=3"]
HOLD = "hold"  # the stage holds as soon as it is Running (doughflow/orchestration/stage_tasks.py, DOUGHFLOW_FAULT_HOLD_STAGE)


def _after_checkpoints(run_dir: Path, count: int):
    return lambda: len(list((run_dir / "train" / "checkpoints").glob("*/"))) >= count


# Every stage of flows.train in order, and when inside it the kill lands. Training is killed
# mid-way, after its second checkpoint, so the rerun must resume from a checkpoint.
ALL_KILL_POINTS: list[tuple[str, object]] = [
    ("fetch", HOLD),
    ("validate", HOLD),
    ("subsample", HOLD),
    ("publish-subsample", HOLD),
    ("split", HOLD),
    ("train", "after 2 checkpoints"),
    ("evaluate", HOLD),
    ("export-onnx", HOLD),
    ("deploy-formats", HOLD),
    ("behaviour-tests", HOLD),
    ("release-gates", HOLD),
    ("report", HOLD),
    ("package", HOLD),
    ("publish-bundle", HOLD),
    ("publish-report", HOLD),
    ("review-packet", HOLD),
    ("publish-run", HOLD),
    ("record-run", HOLD),
    ("enforce-release", HOLD),
]
ORDER = [stage for stage, _ in ALL_KILL_POINTS]
# `make test` kills in one stage of every kind, not in all 19: a hold kill lands before the stage writes
# anything, so the cached model stages (evaluate ... report) all test the same thing, and each kill
# replays every stage before it (the full list took 159 s of the suite, this one about 90). The kinds:
# the first stage (an I/O stage with retries), the Dask stage, an uncached publish inside the data
# sub-flow, the sub-flow's last stage, training mid-way (resumed from its checkpoint), a cached model
# stage, the bundle, an uncached stage after publishing, the registry, and the last stage.
# DOUGHFLOW_FAULT_STAGES=all kills in every stage; or name a comma-separated subset.
EVERY_KIND = (
    "fetch",
    "subsample",
    "publish-subsample",
    "split",
    "train",
    "deploy-formats",
    "package",
    "review-packet",
    "record-run",
    "enforce-release",
)


def _chosen_stages() -> list[str]:
    chosen = os.environ.get("DOUGHFLOW_FAULT_STAGES") or ",".join(EVERY_KIND)
    if chosen == "all":
        return ORDER
    unknown = [stage for stage in chosen.split(",") if stage not in ORDER]
    if unknown:
        raise ValueError(f"DOUGHFLOW_FAULT_STAGES names {unknown}, not stages of flows.train: {ORDER}")
    return chosen.split(",")


KILL_POINTS = [point for point in ALL_KILL_POINTS if point[0] in _chosen_stages()]


def _command(artifacts: Path, run_id: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flows.train",
        *FAULT_OVERRIDES,
        f"artifacts_dir={artifacts}",
        *extra,
        "--run-id",
        run_id,
    ]


def _run(command: list[str], env: dict, log: Path) -> dict:
    with log.open("w") as handle:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=handle, text=True, timeout=900)
    assert done.returncode == 0, log.read_text()[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


class ForkedFlows:
    """tests/support/forked_flow.py: one process imports the pipeline once and forks a flow per kill."""

    def __init__(self, env: dict, log: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forked_flow"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def start(self, argv: list[str], env: dict, log: Path, out: Path | None = None) -> int:
        request = {"argv": argv, "env": env, "log": str(log), "out": str(out) if out else None}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def run(self, argv: list[str], log: Path, out: Path) -> int:
        """Start a whole run (no kill point); ``finished`` reads its summary."""
        return self.start(argv, {"DOUGHFLOW_FAULT_HOLD_STAGE": ""}, log, out)

    @staticmethod
    def finished(pid: int, log: Path, out: Path, timeout: float = 900) -> dict:
        """The summary a run started by ``run`` printed last, once its process has ended."""
        deadline = time.monotonic() + timeout
        while _alive(pid):
            assert time.monotonic() < deadline, f"run {pid} still going after {timeout} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        lines = out.read_text().strip().splitlines() if out.exists() else []
        assert lines and lines[-1].startswith("{"), f"run {pid} ended without a summary:\n{log.read_text()[-4000:]}"
        return json.loads(lines[-1])

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_when(flows: ForkedFlows, argv: list[str], env: dict, trigger, log: Path, timeout: float = 600) -> None:
    """Start the flow, and SIGKILL its whole process group the moment ``trigger()`` holds."""
    pid = flows.start(argv, env, log)
    deadline = time.monotonic() + timeout
    while not trigger():
        assert _alive(pid), f"the run ended before the kill point:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"kill point never reached:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    while _alive(pid):
        assert time.monotonic() < deadline + 60, f"{pid} survived SIGKILL"
        time.sleep(0.1)


def _model_identity(bundle: Path) -> tuple[str, str]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest["data_fingerprint"], manifest["files"]["model.onnx"]["sha256"]


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    """The compose prefect-server command on loopback (on SQLite), requiring the auth string of a
    fresh .env, which every run of this module sends."""
    home = tmp_path_factory.mktemp("fault_prefect_home")
    secrets = stack_secrets()
    ports = {4200: free_port()}
    client = service_environment("worker", secrets, ports)
    api = client["PREFECT_API_URL"]
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK")
    }
    env = {
        **inherited,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "PREFECT_API_AUTH_STRING": client["PREFECT_API_AUTH_STRING"],
        "PREFECT_SERVER_API_AUTH_STRING": service_environment("prefect-server", secrets)[
            "PREFECT_SERVER_API_AUTH_STRING"
        ],
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    log = home / "server.log"
    server = start(service_command("prefect-server", ports), log, env)
    try:
        wait_until(prefect_healthy(api), server, log, "prefect server", timeout=180)
        yield env
    finally:
        stop(server)


@pytest.fixture(scope="module")
def forked(server_env, tmp_path_factory):
    """One process that imported the pipeline, forking a flow process per run (tests/support/forked_flow.py)."""
    flows = ForkedFlows(
        {**server_env, "DOUGHFLOW_FAULT_HOLD_STAGE": ""}, tmp_path_factory.mktemp("forked") / "forked.log"
    )
    yield flows
    flows.close()


@pytest.fixture(scope="module")
def two_runs(forked, tmp_path_factory) -> tuple[Path, list[dict]]:
    """Two uninterrupted runs started at once on one artifact store (also the fault suite's reference):
    two flow processes, forked from the pipeline's imports (tests/support/forked_flow.py)."""
    tmp = tmp_path_factory.mktemp("two_runs")
    artifacts = tmp / "shared"
    files = {run_id: (tmp / f"{run_id}.log", tmp / f"{run_id}.out") for run_id in ("left", "right")}
    pids = {run_id: forked.run(_command(artifacts, run_id)[3:], *files[run_id]) for run_id in files}
    return artifacts, [forked.finished(pids[run_id], *files[run_id]) for run_id in files]


@pytest.mark.slow
def test_kill_9_in_each_kind_of_stage_then_rerun_matches_an_uninterrupted_run(server_env, forked, two_runs, tmp_path):
    artifacts = tmp_path / "faulty"
    run_dir = artifacts / "victim"
    command = _command(artifacts, "victim")
    marker = tmp_path / "holding"
    for stage, when in KILL_POINTS:
        marker.unlink(missing_ok=True)
        hold = stage if when == HOLD else ""
        trigger = marker.exists if when == HOLD else _after_checkpoints(run_dir, 2)
        _kill_when(
            forked,
            command[3:],
            {"DOUGHFLOW_FAULT_HOLD_STAGE": hold, "DOUGHFLOW_FAULT_HOLD_MARKER": str(marker)},
            trigger,
            tmp_path / f"kill-{stage}.log",
        )
        if when == HOLD:
            assert marker.read_text().split()[0] == stage
    # The last run is a plain `python -m flows.train`, as a user would rerun it.
    resumed = _run(command, server_env, tmp_path / "resumed.log")

    assert resumed["run_id"] == "victim"
    assert verify_bundle(Path(resumed["bundle"])) == []
    reference = two_runs[1][0]
    assert _model_identity(Path(resumed["bundle"])) == _model_identity(Path(reference["bundle"]))
    assert resumed["metrics"]["test_exact_count_accuracy"] == reference["metrics"]["test_exact_count_accuracy"]
    # Each killed stage finished in the run after its kill, so the last rerun found every cached stage
    # before the last kill point done (all of them with every kill point).
    record = load_runs(artifacts / "registry.sqlite")[-1]
    done = [stage for stage in DATA_STAGES | MODEL_STAGES if ORDER.index(stage) < ORDER.index(KILL_POINTS[-1][0])]
    not_cached = {stage: record.stage_states.get(stage) for stage in done if record.stage_states.get(stage) != "Cached"}
    assert not not_cached, _cache_diagnosis(not_cached, artifacts, tmp_path / "resumed.log")


def _cache_diagnosis(not_cached: dict, artifacts: Path, log: Path) -> str:
    """What a failed cache assertion needs to be understood: the stages that ran again, the records
    each key has in the result store (a new key means the key changed, one record rewritten means
    the lookup missed it), and the rerun's log lines about the cache."""
    store = artifacts / ".prefect-results"
    records = {
        stage: sorted(f"{p.name} mtime {p.stat().st_mtime:.1f}" for p in store.glob(f"doughflow-{stage}-*"))
        for stage in not_cached
    }
    lines = [line for line in log.read_text().splitlines() if "cache" in line.lower() or "recomput" in line]
    return f"not cached: {not_cached}\nrecords: {json.dumps(records, indent=1)}\nlog:\n" + "\n".join(lines[-40:])


@pytest.mark.slow
def test_two_runs_at_once_on_one_artifact_store(two_runs):
    artifacts, summaries = two_runs
    for summary, run_id in zip(summaries, ("left", "right")):
        bundle = Path(summary["bundle"])
        assert verify_bundle(bundle) == []
        assert json.loads((bundle / "manifest.json").read_text())["run_id"] == run_id
    # Whichever run finished a stage first may serve it to the other from the cache, but each run
    # wrote only inside its own folder, and both bundles hold the same model.
    assert _model_identity(Path(summaries[0]["bundle"])) == _model_identity(Path(summaries[1]["bundle"]))
    written = {p.name for p in artifacts.iterdir()}
    # .keys holds the store's pseudonym key (one per store: both runs must map a customer id alike)
    assert written <= {"left", "right", "datasets", ".prefect-results", "registry.sqlite", ".keys"}, written
