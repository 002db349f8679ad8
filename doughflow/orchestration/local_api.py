"""Prefect's temporary local API, started the moment a flow command starts rather than when the flow
first needs it.

With no ``PREFECT_API_URL``, Prefect starts a local API server process at a flow's first request.
Measured on 2 quiet cores: ``python -m flows.train`` spends about 4.5 s importing (torch, Prefect,
pandas, matplotlib); Prefect then imports its own server module in our process just to start the
server (about 3 s more), and the server process needs about 5 s of imports before it answers, and its
first two requests take about 0.35 s each while it warms up. All of that came after our imports, in
series: 12 s of a 22 s no-change rerun. Started first (``flows/__init__.py`` calls :func:`prestart`
before anything heavy is imported), the server comes up on the other core while we import, a thread
warms it up, and our process never imports the server module.

It is the same server Prefect would start (``uvicorn prefect.server.api.server:create_app`` with the
ephemeral settings), reached by setting ``PREFECT_API_URL`` for the flow. A URL configured anywhere
Prefect looks (environment, profile) wins: :func:`local_api` then stops ours unused. The server stops
when this process exits, or with it if it is killed (PR_SET_PDEATHSIG). The server's
telemetry is off: a temporary API has nothing to report, and offline it logged an error every run.
Only the standard library is imported here, so starting costs nothing before Prefect is loaded.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The ephemeral server's own settings, as Prefect starts it (prefect.server.api.server.SubprocessASGIServer).
SERVER_ENV = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}
# Requests that make the server build what it builds lazily (its database engine, the ORM's queries).
WARM_UP = (
    ("GET", "/admin/version", None),
    ("POST", "/block_types/filter", {"limit": 1}),
    ("POST", "/flow_runs/filter", {"limit": 1}),
)
STARTUP_TIMEOUT_S = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))


class LocalApiError(RuntimeError):
    """The temporary API server did not come up."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the server process before exec: SIGTERM it when this process dies (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# Loopback only: no proxy from the environment may stand between us and our own server.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _request(url: str, method: str = "GET", body: object = None, timeout: float = 5.0) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with _OPENER.open(request, timeout=timeout) as response:
        return response.status


class LocalApi:
    """One server process on a free loopback port, and a thread that waits for it and warms it up."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.error: str | None = None
        self._ready = threading.Event()
        self._spawn()
        atexit.register(self.stop)  # registered before Prefect's handlers, so it runs after they drain their logs
        threading.Thread(target=self._wait_and_warm, name="doughflow-local-api", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self) -> None:
        spec = importlib.util.find_spec("prefect")
        if spec is None or not spec.submodule_search_locations:
            raise LocalApiError("prefect is not installed")
        app_dir = str(Path(next(iter(spec.submodule_search_locations))).parent)
        self.port = _free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            app_dir,
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]
        self.process = subprocess.Popen(
            command, env={**os.environ, **SERVER_ENV}, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )

    def _wait_and_warm(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        respawned = False
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                if code == 3 and not respawned:  # uvicorn: the port was taken after we picked it
                    respawned = True
                    self._spawn()
                    continue
                self.error = f"the temporary Prefect API server exited with code {code}"
                break
            try:
                if _request(f"{self.url}/health", timeout=1.0) == 200:
                    for method, path, body in WARM_UP:
                        _request(f"{self.url}{path}", method, body, timeout=30.0)
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.05)
        else:
            self.error = f"the temporary Prefect API server did not answer within {STARTUP_TIMEOUT_S:.0f} s"
        self._ready.set()

    def wait(self) -> str:
        """The API URL once the server answers; LocalApiError when it failed to start."""
        self._ready.wait()
        if self.error:
            self.stop()
            raise LocalApiError(self.error + " (set PREFECT_API_URL to use a running Prefect server instead)")
        return self.url

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_SERVER: LocalApi | None = None


def prestart() -> None:
    """Start the server now unless the environment names an API; idempotent. Only the standard
    library runs here: whether a Prefect profile names a server is checked later, by :func:`local_api`."""
    global _SERVER
    if _SERVER is None and not os.environ.get("PREFECT_API_URL"):
        _SERVER = LocalApi()


@contextmanager
def local_api() -> Iterator[float | None]:
    """Run the body against our temporary API, when :func:`prestart` started one, and yield the seconds
    spent waiting for it here; or, when Prefect's settings name a server (environment or profile),
    against that one, yielding None (ours, if started, is stopped unused). A process that did not start
    for a flow (a test, a program calling the CLI function) leaves the API to Prefect: None as well."""
    global _SERVER
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value() or _SERVER is None:
        if _SERVER is not None:
            _SERVER.stop()
            _SERVER = None
        yield None
        return
    waited = time.perf_counter()
    url = _SERVER.wait()
    with temporary_settings(updates={PREFECT_API_URL: url}), without_heartbeats():
        yield time.perf_counter() - waited


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flows called in this block send no run heartbeats. A heartbeat lets a server notice that a run's
    process died and mark the run crashed; a temporary API dies with the process, so nobody is left to
    notice. And each flow's end waits for Prefect's heartbeat thread, which sleeps in 1 s steps: 0.5 s
    on average per flow, three flows per training run (the run, its pipeline, its data sub-flow): the
    "flow end" row of a tiny run's time table went from 1.4-1.6 s to 0.1-0.2 s."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def launched_flow_command(argv: list[str]) -> bool:
    """Whether this interpreter was started as ``python -m flows.train|prepare|tune`` (not for --help):
    only those run a flow (not with --help or --print-config), and only a process started for one should start a server."""
    if "-m" not in argv:
        return False
    module = argv[argv.index("-m") + 1] if argv.index("-m") + 1 < len(argv) else ""
    rest = argv[argv.index("-m") + 2 :]
    return module in {"flows.train", "flows.prepare", "flows.tune"} and not {"-h", "--help", "--print-config"} & set(
        rest
    )
