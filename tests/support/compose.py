"""The docker-compose services' commands, run natively on loopback.

Tests read each command from docker-compose.yml itself rather than repeating it, so the stack's
commands and the ones the tests run cannot drift apart. Only what a container network changes is
rewritten: service host names and 0.0.0.0 become 127.0.0.1, and the published ports become free
ones (two tests at once never collide).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def service_command(name: str, ports: dict[int, int] | None = None) -> list[str]:
    """``name``'s command as argv, for a native run on loopback. ``ports`` maps the compose port
    numbers to the ones to use here; a service whose command is only its image's arguments
    (``entrypoint`` in compose) gets that entrypoint in front."""
    service = services()[name]
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if "entrypoint" in service:
        entry = service["entrypoint"]
        argv = (shlex.split(entry) if isinstance(entry, str) else list(entry)) + argv
    hosts = "|".join(re.escape(other) for other in services())
    rewritten = []
    for part in argv:
        part = re.sub(rf"(?<=[/@])({hosts})(?=[:/]|$)", "127.0.0.1", part)
        part = "127.0.0.1" if part == "0.0.0.0" else part.replace("0.0.0.0:", "127.0.0.1:")
        for compose_port, port in (ports or {}).items():
            part = str(port) if part == str(compose_port) else re.sub(rf":{compose_port}\b", f":{port}", part)
        rewritten.append(part)
    executable = BIN / rewritten[0]
    return [str(executable) if executable.exists() else rewritten[0], *rewritten[1:]]


def start(argv: list[str], log: Path, env: dict | None = None, **options) -> subprocess.Popen:
    """In its own process group, so ``stop`` also ends the children (dask worker's nanny)."""
    return subprocess.Popen(argv, cwd=ROOT, env=env or dict(os.environ), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True, **options)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, log: Path, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0
    return check


def prefect_healthy(api: str) -> Callable[[], bool]:
    """Whether the Prefect API at ``api`` (…/api) answers its health check."""
    def check() -> bool:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False
    return check
