"""The stack is private unless opened on purpose, as docker-compose.yml and the Dockerfile write it:
every published port on 127.0.0.1 unless DOUGHFLOW_BIND_ADDRESS says otherwise (the Dask dashboard
and the MLflow server, which have no login, always); no credential in a tracked file, each one a required value of the
untracked .env; images pinned to exact versions, run as a non-root user without privileges."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from doughflow.stack.dotenv import read_values
from tests.support.compose import ROOT, interpolate, services, stack_secrets

COMPOSE = (ROOT / "docker-compose.yml").read_text()
SECRET_NAME = re.compile(r"PASSWORD|SECRET|AUTH_STRING|CONNECTION_URL", re.IGNORECASE)


def _published(values: dict[str, str]) -> dict[str, list[str]]:
    return {
        name: [interpolate(str(port), values) for port in service.get("ports", [])]
        for name, service in services().items()
    }


def test_every_port_listens_on_loopback_unless_opened():
    secrets = stack_secrets()
    for values, address in [
        (secrets, "127.0.0.1"),
        ({**secrets, "DOUGHFLOW_BIND_ADDRESS": ""}, "127.0.0.1"),
        ({**secrets, "DOUGHFLOW_BIND_ADDRESS": "0.0.0.0"}, "0.0.0.0"),
    ]:
        published = _published(values)
        assert {name for name, ports in published.items() if ports} == {
            "postgres",
            "prefect-server",
            "dask-scheduler",
            "s3",
            "mlflow",
        }
        for name, ports in published.items():
            for port in ports:
                host, _, _ = port.rpartition(":")[0].rpartition(":")
                # the Dask dashboard and the MLflow server have no login
                expected = "127.0.0.1" if port.endswith((":8787", ":5000")) else address
                assert host == expected, (name, port)


def test_no_credential_is_tracked():
    template = read_values((ROOT / ".env.example").read_text())
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE))
    assert required == {"POSTGRES_PASSWORD", "PREFECT_API_AUTH_STRING", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert required <= set(template)
    assert all(not template[name] for name in required if SECRET_NAME.search(name))  # the template holds no secret
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.search(r"\$\{[A-Z_]+:\?", str(value)), f"{name}: {key} must come from .env"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must be ignored by git"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", ".env"], cwd=ROOT, capture_output=True)
    assert tracked.returncode != 0, ".env is tracked"


def test_a_missing_secret_stops_the_stack():
    secrets = stack_secrets()
    for name in ("POSTGRES_PASSWORD", "PREFECT_API_AUTH_STRING", "AWS_SECRET_ACCESS_KEY"):
        with pytest.raises(KeyError, match=name):
            for service in services().values():
                for value in (service.get("environment") or {}).values():
                    interpolate(str(value), {**secrets, name: ""})


def test_images_are_pinned_and_run_unprivileged():
    for name in ("Dockerfile", "Dockerfile.gpu"):
        dockerfile = (ROOT / name).read_text()
        bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
        bases += re.findall(r"^COPY\s+--from=(\S+)", dockerfile, re.MULTILINE)
        assert bases and all(re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?", base) for base in bases), (name, bases)
        users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
        assert users and users[-1].split(":")[0] not in ("root", "0"), name
    for name, service in services().items():
        assert "build" in service or "image" in service, name
        if "image" in service:  # not our Dockerfile: a pinned version and an explicit user
            assert re.fullmatch(r"[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.-]+)?", service["image"]), service["image"]
            assert service.get("user") not in (None, "root", "0"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("cap_drop") == ["ALL"], name


def test_the_gpu_profile_adds_a_gpu_worker_on_a_second_work_pool():
    stack = services()
    gpu = stack["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"] == {"context": ".", "dockerfile": "Dockerfile.gpu"}
    assert gpu["command"] == "prefect worker start --pool doughflow-gpu"
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}
    ]
    assert gpu["environment"] == stack["worker"]["environment"]  # the same stack, the same credentials
    assert [name for name, service in stack.items() if "profiles" in service] == ["worker-gpu"]  # the rest runs without
    assert "prefect work-pool create doughflow-gpu --type process" in stack["deploy"]["command"]


def test_the_gpu_image_installs_the_cuda_constraints():
    dockerfile = (ROOT / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM nvidia/cuda:\d+\.\d+\.\d+-cudnn-devel-ubuntu\d+\.\d+$", dockerfile, re.MULTILINE)
    installs = re.findall(r"uv pip install[^\n]*", dockerfile)
    assert len(installs) == 4 and all("-c constraints-cuda.txt" in line for line in installs), installs
    assert "--no-build-isolation deepspeed" in dockerfile and "constraints-cpu.txt constraints-cuda.txt" in dockerfile


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_cuda_constraints_are_the_cpu_set_plus_exact_cuda_pins():
    cuda = ROOT / "constraints-cuda.txt"
    options = [line for line in cuda.read_text().splitlines() if line.startswith("-")]
    assert options == ["-c constraints-cpu.txt"]  # every CPU pin applies, at the same version
    extra, cpu = _pins(cuda), _pins(ROOT / "constraints-cpu.txt")
    assert not set(extra) & set(cpu), set(extra) & set(cpu)  # no package pinned twice
    assert all(re.fullmatch(r"\d+(\.\d+)+", version) for version in extra.values()), extra
    assert {"nvidia-cudnn-cu13", "nvidia-nccl-cu13", "triton"} <= set(extra) and cpu["torch"] == "2.13.0"
