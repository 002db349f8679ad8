"""Fault suite: kill -9 of the flow process during several stages, then a rerun of the same run
that completes with the same bundle (data fingerprint, model hash) as an uninterrupted run; and two
runs at once on one artifact store that do not touch each other's files."""

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
from tests.conftest import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[2]
# Checkpoints every few steps so that a kill lands between two of them.
FAULT_OVERRIDES = [*TINY_OVERRIDES, "train.epochs=3"]


def _command(artifacts: Path, run_id: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows.train", *FAULT_OVERRIDES, f"artifacts_dir={artifacts}", *extra, "--run-id", run_id]


def _env(home: Path) -> dict:
    inherited = {k: v for k, v in os.environ.items() if k not in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**inherited, "PREFECT_HOME": str(home), "PYTHONPATH": str(ROOT)}


def _run(command: list[str], env: dict, log: Path) -> dict:
    with log.open("w") as handle:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=handle, text=True, timeout=900)
    assert done.returncode == 0, log.read_text()[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _kill_when(command: list[str], env: dict, trigger, log: Path, timeout: float = 600) -> None:
    """Start the flow, and SIGKILL its whole process group the moment ``trigger()`` holds."""
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not trigger():
            assert process.poll() is None, f"the run ended before the kill point:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _model_identity(bundle: Path) -> tuple[str, str]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    return manifest["data_fingerprint"], manifest["files"]["model.onnx"]["sha256"]


@pytest.mark.slow
def test_kill_9_during_stages_then_rerun_matches_an_uninterrupted_run(tmp_path):
    env = _env(tmp_path / "prefect_home")
    reference = _run(_command(tmp_path / "ref", "reference", "orchestration.cache=false"), env, tmp_path / "ref.log")

    artifacts = tmp_path / "faulty"
    run_dir = artifacts / "victim"
    command = _command(artifacts, "victim")
    kill_points = {
        "validate": lambda: (run_dir / "data" / "valid").exists(),
        "train, after a checkpoint": lambda: len(list((run_dir / "train" / "checkpoints").glob("*/"))) >= 2,
        "deploy formats": lambda: any((run_dir / "export").glob("*.mlpackage")),
    }
    for name, trigger in kill_points.items():
        _kill_when(command, env, trigger, tmp_path / f"kill-{name.split(',')[0]}.log")
    resumed = _run(command, env, tmp_path / "resumed.log")

    assert resumed["run_id"] == "victim"
    assert verify_bundle(Path(resumed["bundle"])) == []
    assert _model_identity(Path(resumed["bundle"])) == _model_identity(Path(reference["bundle"]))
    assert resumed["metrics"]["test_exact_count_accuracy"] == reference["metrics"]["test_exact_count_accuracy"]


@pytest.mark.slow
def test_two_runs_at_once_on_one_artifact_store(tmp_path):
    env = _env(tmp_path / "prefect_home")
    artifacts = tmp_path / "shared"
    processes = []
    for run_id in ("left", "right"):
        log = (tmp_path / f"{run_id}.log").open("w")
        processes.append(subprocess.Popen(_command(artifacts, run_id), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                          stderr=log, text=True))
    outputs = [process.communicate(timeout=900)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], (tmp_path / "left.log").read_text()[-3000:]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    for summary, run_id in zip(summaries, ("left", "right")):
        bundle = Path(summary["bundle"])
        assert verify_bundle(bundle) == []
        assert json.loads((bundle / "manifest.json").read_text())["run_id"] in ("left", "right")
    # Whichever run finished a stage first may serve it to the other from the cache, but each run
    # wrote only inside its own folder, and both bundles hold the same model.
    assert _model_identity(Path(summaries[0]["bundle"])) == _model_identity(Path(summaries[1]["bundle"]))
    written = {p.name for p in artifacts.iterdir()}
    assert written <= {"left", "right", "datasets", ".prefect-results", "registry.sqlite"}, written
