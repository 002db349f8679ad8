"""The docker-compose services' commands and environments, run natively on loopback.

Tests read each command and environment from docker-compose.yml itself rather than repeating it, so
the stack's commands and the ones the tests run cannot drift apart. Only what a container network
changes is rewritten: service host names and 0.0.0.0 become 127.0.0.1, the published ports become
free ones (two tests at once never collide), and folders mounted into the containers (the Dask
certificates) become the test's own. The secrets the stack reads from .env are fresh for each
test, made the way `make stack-env` makes them.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from doughflow.stack.dotenv import fill, read_values

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONTAINER_CERTS = "/opt/doughflow/certs"  # where the certs volume is mounted in docker-compose.yml
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} (compose's interpolation)
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def stack_secrets() -> dict[str, str]:
    """A fresh .env for the stack: .env.example with every empty secret filled (`make stack-env`)."""
    return read_values(fill((ROOT / ".env.example").read_text()))


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """``text`` with compose's ``${...}`` references resolved from ``values``; a required one
    (``:?``) that is unset or empty raises, as compose refuses to start."""

    def resolve(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = values.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return VARIABLE.sub(resolve, text.replace("$$", "\0")).replace("\0", "$")


def _localise(part: str, ports: Mapping[int, int], paths: Mapping[str, Path]) -> str:
    # host names only where a URL names a host (after // or @): a path may hold a service's name
    hosts = "|".join(re.escape(other) for other in services())
    part = re.sub(rf"(?:(?<=//)|(?<=@))({hosts})(?=[:/]|$)", "127.0.0.1", part)
    part = "127.0.0.1" if part == "0.0.0.0" else part.replace("0.0.0.0:", "127.0.0.1:")
    for compose_port, port in ports.items():
        part = str(port) if part == str(compose_port) else re.sub(rf":{compose_port}\b", f":{port}", part)
    for container, local in paths.items():
        for lead in ("", "sqlite:///"):  # a folder, or a SQLite database URL inside it
            if part == lead + container or part.startswith(lead + container + "/"):
                part = lead + str(local) + part[len(lead + container) :]
    return part


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def service_command(
    name: str,
    ports: Mapping[int, int] | None = None,
    paths: Mapping[str, Path] | None = None,
    values: Mapping[str, str] | None = None,
) -> list[str]:
    """``name``'s command as argv, for a native run on loopback. ``ports`` maps the compose port
    numbers to the ones to use here, ``paths`` container folders to local ones, ``values`` fill
    ``${...}``; a service whose command is only its image's arguments (``entrypoint`` in compose)
    gets that entrypoint in front."""
    service = services()[name]
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    if "entrypoint" in service:
        entry = service["entrypoint"]
        argv = (shlex.split(entry) if isinstance(entry, str) else list(entry)) + argv
    rewritten = [_localise(interpolate(part, values or {}), ports or {}, paths or {}) for part in argv]
    executable = BIN / rewritten[0]
    return [str(executable) if executable.exists() else rewritten[0], *rewritten[1:]]


def service_environment(
    name: str,
    values: Mapping[str, str],
    ports: Mapping[int, int] | None = None,
    paths: Mapping[str, Path] | None = None,
) -> dict[str, str]:
    """``name``'s environment, its ``${...}`` filled from ``values`` (the stack's .env) and host
    names, ports and mounted folders rewritten as in ``service_command``."""
    environment = services()[name].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {
        key: _localise(interpolate(str(value), values), ports or {}, paths or {}) for key, value in environment.items()
    }


def start(argv: list[str], log: Path, env: dict | None = None, **options) -> subprocess.Popen:
    """In its own process group, so ``stop`` also ends the children (dask worker's nanny)."""
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env or dict(os.environ),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **options,
    )


def stop(process: subprocess.Popen, stop_signal: int = signal.SIGTERM) -> None:
    """``docker compose stop``: ``stop_signal`` (the image's STOPSIGNAL), then SIGKILL after 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, stop_signal)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen, log: Path, what: str, timeout: float = 120
) -> None:
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


def basic_auth(auth_string: str) -> dict[str, str]:
    """The header a Prefect client sends for PREFECT_API_AUTH_STRING."""
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


def http_status(url: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> int:
    """The HTTP status ``url`` answers (errors included), for checks that a request is refused."""
    request = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
