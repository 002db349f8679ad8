"""The compose stack's database, natively: `postgres` as docker-compose.yml runs it (on loopback,
on a cluster made with initdb, with the compose service's password and host authentication method),
refusing a connection without that password; the compose `prefect server start` on it, with the
compose environment (database URL, API auth string), and flow runs through that server landing in
Postgres' tables - a cached task included."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.compose import (
    ROOT,
    free_port,
    port_open,
    prefect_healthy,
    service_command,
    service_environment,
    stack_secrets,
    start,
    stop,
    wait_until,
)


def _postgres_bin() -> Path | None:
    """Postgres' server binaries: on PATH, or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


@dataclass(frozen=True)
class Postgres:
    port: int
    secrets: dict[str, str]  # the stack's .env this cluster was made with
    user: str
    password: str
    database: str

    def url(self, driver: str = "") -> str:
        return f"postgresql{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"


@pytest.fixture
def postgres(tmp_path):
    """A fresh cluster on a free loopback port: the compose service's user, database and password
    (from a fresh .env) and its host authentication method. Postgres refuses to run as root: under
    root the server runs as the `postgres` system user, in a folder it owns."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "no Postgres server binaries (initdb/postgres) on this machine: apt-get install postgresql "
            "(.ci/run installs them)"
        )
    secrets = stack_secrets()
    environment = service_environment("postgres", secrets)
    user, password, database = (
        environment["POSTGRES_USER"],
        environment["POSTGRES_PASSWORD"],
        environment["POSTGRES_DB"],
    )
    as_user = {}
    folder = Path(tempfile.mkdtemp(prefix="doughflow-pg-"))
    if os.geteuid() == 0:
        as_user = {"user": "postgres", "group": "postgres"}
        shutil.chown(folder, "postgres", "postgres")
    (folder / "pw").write_text(password + "\n")
    if as_user:
        shutil.chown(folder / "pw", "postgres", "postgres")
    data = folder / "data"
    # The image's entrypoint writes `host all all all <POSTGRES_HOST_AUTH_METHOD>`; local socket
    # connections (its own health check) are the only others, here behind the password as well.
    subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            f"--auth-host={environment['POSTGRES_HOST_AUTH_METHOD']}",
            "--auth-local=scram-sha-256",
            f"--pwfile={folder / 'pw'}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
        cwd=folder,
        **as_user,
    )
    (folder / "pw").unlink()
    port = free_port()
    argv = service_command("postgres", {5432: port})
    argv = [str(bin_dir / "postgres"), *argv[1:], "-D", str(data), "-c", f"unix_socket_directories={folder}"]
    log = tmp_path / "postgres.log"
    server = start(argv, log, **as_user)
    try:
        wait_until(port_open(port), server, log, "postgres")
        env = {**os.environ, "PGPASSWORD": password}
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
            check=True,
            env=env,
            timeout=60,
        )
        yield Postgres(port, secrets, user, password, database)
    finally:
        # The postgres image's STOPSIGNAL: a fast shutdown, which ends open sessions. SIGTERM asks for a
        # smart one, which waits for every client to leave: an Optuna study's pooled connection held it
        # for the whole 20 s before the SIGKILL.
        stop(server, signal.SIGINT)
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_refuses_connections_without_the_password(postgres, tmp_path):
    import asyncio

    import asyncpg

    no_passfile = tmp_path / "no-pgpass"  # asyncpg would read ~/.pgpass; there is none to read here

    async def connect(password: str | None) -> str:
        connection = await asyncpg.connect(
            host="127.0.0.1",
            port=postgres.port,
            user=postgres.user,
            database=postgres.database,
            password=password,
            passfile=str(no_passfile),
            timeout=30,
        )
        try:
            return await connection.fetchval("SELECT current_user")
        finally:
            await connection.close()

    for wrong in (None, "", "prefect", postgres.password[:-1]):
        with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
            asyncio.run(connect(wrong))
    assert asyncio.run(connect(postgres.password)) == postgres.user


FLOW = textwrap.dedent("""
    from prefect import flow, task

    @task(cache_key_fn=lambda context, parameters: f"pg-{parameters['x']}", persist_result=True)
    def double(x: int) -> int:
        return 2 * x

    @flow(name="postgres-smoke")
    def smoke(x: int) -> str:
        return double(x, return_state=True).name

    print(smoke(21), smoke(21))
""")


@pytest.mark.slow
def test_prefect_server_on_postgres(postgres, tmp_path):
    import asyncio

    import asyncpg

    port = free_port()
    ports = {5432: postgres.port, 4200: port}
    server_environment = service_environment("prefect-server", postgres.secrets, ports)
    assert server_environment["PREFECT_API_DATABASE_CONNECTION_URL"] == postgres.url("+asyncpg")
    client = service_environment("worker", postgres.secrets, ports)  # the flow run is a client of the server
    env = {
        **os.environ,
        **server_environment,
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": client["PREFECT_API_URL"],
        "PREFECT_API_AUTH_STRING": client["PREFECT_API_AUTH_STRING"],
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"),
    }
    api = env["PREFECT_API_URL"]
    log = tmp_path / "server.log"
    server = start(service_command("prefect-server", ports), log, env)

    async def rows() -> tuple[int, list[str]]:
        connection = await asyncpg.connect(postgres.url())
        try:
            flows = await connection.fetchval(
                "SELECT count(*) FROM flow_run fr JOIN flow f ON f.id = fr.flow_id "
                "WHERE f.name = 'postgres-smoke' AND fr.state_type = 'COMPLETED'"
            )
            tasks = await connection.fetch(
                "SELECT tr.state_name FROM task_run tr JOIN flow_run fr ON fr.id = tr.flow_run_id "
                "JOIN flow f ON f.id = fr.flow_id WHERE f.name = 'postgres-smoke'"
            )
            return flows, sorted(row["state_name"] for row in tasks)
        finally:
            await connection.close()

    expected = (2, ["Cached", "Completed"])
    try:
        wait_until(prefect_healthy(api), server, log, "prefect server on postgres", timeout=240)
        done = subprocess.run(
            [sys.executable, "-c", FLOW], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split()[-2:] == ["Completed", "Cached"], done.stdout
        # Both flow runs and both task runs (computed, then served from the cache) are Postgres rows;
        # task runs arrive through the server's event pipeline, so allow it a moment.
        wait_until(lambda: asyncio.run(rows()) == expected, server, log, "task runs in postgres", timeout=60)
    finally:
        stop(server)
    assert asyncio.run(rows()) == expected


@pytest.mark.slow
def test_tuning_study_on_the_stacks_postgres(postgres, tmp_path):
    """`tune.storage` pointed at the stack's Postgres (the Prefect server's database): the study,
    its enqueued baseline, sampled trials and their outcomes live there, and a reopened study (a
    rerun of flows.tune) resumes from them."""
    import asyncio

    import asyncpg
    import optuna

    from doughflow.config import load_config
    from doughflow.tuning.study import ask, load_study, open_study, tell, trials_left

    url = postgres.url("+psycopg2")
    config = load_config(None, [f"artifacts_dir={tmp_path}", f"tune.storage={url}", "tune.study_name=pg-study"])
    ref = open_study(config)
    assert ref.storage == url and not (tmp_path / "tune").exists()  # nothing fell back to SQLite
    outcomes = [{"state": "complete", "value": 0.8}, {"state": "pruned"}, {"state": "complete", "value": 0.9}]
    plans = []
    for outcome in outcomes:
        plans.append(ask(ref, config.tune))
        assert tell(ref, plans[-1], {**outcome, "run_id": f"run-{plans[-1].number}"}) == outcome["state"]
    assert plans[0].params == config.tune.enqueue[0]  # the enqueued baseline runs first
    assert len({tuple(sorted(p.params.items())) for p in plans}) == 3

    reopened = open_study(config)  # a rerun: the baseline is not enqueued twice
    assert trials_left(reopened, 5) == 2
    study = load_study(reopened)
    assert [t.state for t in study.trials] == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.COMPLETE,
    ]
    assert study.best_value == 0.9 and study.best_trial.user_attrs["run_id"] == "run-2"

    async def stored() -> tuple[str, int]:
        connection = await asyncpg.connect(postgres.url())
        try:
            name = await connection.fetchval("SELECT study_name FROM studies")
            return name, await connection.fetchval("SELECT count(*) FROM trials")
        finally:
            await connection.close()

    assert asyncio.run(stored()) == ("pg-study", 3)
