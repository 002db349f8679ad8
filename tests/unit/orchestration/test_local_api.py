"""The temporary Prefect API a flow command starts before its imports: a real server, its URL used
only when no server is configured, stopped with the command."""

from __future__ import annotations

import json
import urllib.request

import pytest

from doughflow.orchestration import local_api
from doughflow.orchestration.local_api import LocalApi, launched_flow_command


@pytest.mark.parametrize(
    ("argv", "launched"),
    [
        (["python", "-m", "flows.train", "--config", "c.yaml", "train.epochs=2"], True),
        (["python", "-X", "importtime", "-m", "flows.prepare"], True),
        (["python", "-m", "flows.tune", "--help"], False),  # argparse answers; nothing to serve
        (["python", "-m", "flows.verify", "bundle"], False),  # no flow run
        (["python", "-m", "pytest", "-m", "flows.train"], False),
        (["python", "script.py"], False),
        (["python", "-m"], False),
    ],
)
def test_only_a_flow_command_starts_a_server(argv, launched):
    assert launched_flow_command(argv) is launched


def test_server_answers_is_warmed_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    server = LocalApi()
    try:
        url = server.wait()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
        with urllib.request.urlopen(f"{url}/admin/version", timeout=10) as response:
            assert json.loads(response.read())  # the Prefect server's version string
        process = server.process
    finally:
        server.stop()
    assert process is not None and process.poll() is not None  # stopped, not left behind
    server.stop()  # a second stop (atexit after an explicit one) is a no-op


def test_a_configured_server_wins_and_ours_is_stopped_unused(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = []

    class Recorder:
        def stop(self) -> None:
            started.append("stopped")

    monkeypatch.setattr(local_api, "_SERVER", Recorder())
    # A configured server is only read from the settings here, never contacted: no server needs to run.
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}), local_api.local_api() as waited:
        assert waited is None
    assert started == ["stopped"] and local_api._SERVER is None


def test_a_process_not_started_for_a_flow_leaves_the_api_to_prefect(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(local_api, "_SERVER", None)
    with local_api.local_api() as waited:  # no server of ours is started here
        assert waited is None and local_api._SERVER is None


def test_runs_on_our_temporary_api_send_no_heartbeats_and_a_configured_server_gets_them(monkeypatch):
    """Heartbeats let a server mark a run whose process died as crashed: kept for a configured server,
    off for our temporary one, which dies with the process (and each flow's end waited on them)."""
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        get_current_settings,
        temporary_settings,
    )

    class Ready:
        def wait(self) -> str:
            return "http://127.0.0.1:9/api"

        def stop(self) -> None:
            pass

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    default = 180  # Prefect's; set here, since the flow tests' session API turns heartbeats off for the session
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: default}, restore_defaults={PREFECT_API_URL}):
        monkeypatch.setattr(local_api, "_SERVER", Ready())
        with local_api.local_api():
            assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
            assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == default
        monkeypatch.setattr(local_api, "_SERVER", Ready())
        with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}), local_api.local_api():
            assert get_current_settings().flows.heartbeat_frequency == default
