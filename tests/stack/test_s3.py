"""The compose stack's S3 service, natively: its server exactly as docker-compose.yml runs it (on
loopback, with the key from a fresh .env), refusing every request not signed with that key; Prefect
results persisted to s3:// so that a rerun is served from S3's cache, and the bundle published to
S3 with every object matching its manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from doughflow.config import load_config
from doughflow.registry import load_runs
from tests.support.compose import (
    free_port,
    http_status,
    port_open,
    service_command,
    service_environment,
    stack_secrets,
    start,
    stop,
    wait_until,
)
from tests.support.configs import TINY_OVERRIDES

CACHED_STAGES = {
    "fetch",
    "validate",
    "subsample",
    "split",
    "train",
    "evaluate",
    "export-onnx",
    "deploy-formats",
    "behaviour-tests",
    "release-gates",
    "report",
    "package",
}


@pytest.fixture
def s3_endpoint(tmp_path, monkeypatch):
    """The compose `s3` service's command and environment; boto and s3fs find it through the compose
    worker's AWS_* variables (AWS_ENDPOINT_URL and the stack's key)."""
    pytest.importorskip("s3fs", reason="s3:// needs the s3 extra: pip install -e '.[s3]'")
    secrets = stack_secrets()
    ports = {9000: free_port()}
    log = tmp_path / "s3.log"
    server = start(service_command("s3", ports), log, {**os.environ, **service_environment("s3", secrets, ports)})
    try:
        wait_until(port_open(ports[9000]), server, log, "the s3 service")
        client = service_environment("worker", secrets, ports)
        for name, value in client.items():
            if name.startswith("AWS_"):
                monkeypatch.setenv(name, value)
        import fsspec

        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("doughflow")
        yield client["AWS_ENDPOINT_URL"]
    finally:
        stop(server)


def test_s3_refuses_requests_not_signed_with_the_stacks_key(s3_endpoint):
    import boto3
    import botocore.exceptions
    import fsspec

    fsspec.filesystem("s3", skip_instance_cache=True).pipe("doughflow/secret.txt", b"kept")
    # Anonymous: reading, listing, deleting, moto's control API.
    for method, path in [
        ("GET", "/doughflow/secret.txt"),
        ("GET", "/doughflow"),
        ("GET", "/"),
        ("DELETE", "/doughflow/secret.txt"),
        ("POST", "/moto-api/reset"),
        ("GET", "/moto-api/data.json"),
    ]:
        assert http_status(f"{s3_endpoint}{path}", method=method) == 403, (method, path)
    # Signed, but with another secret, or another key id.
    for credentials in [{"aws_secret_access_key": "not-the-stack-secret-000"}, {"aws_access_key_id": "someone-else"}]:
        intruder = boto3.client(
            "s3",
            **{
                "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
                **credentials,
            },
        )
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            intruder.get_object(Bucket="doughflow", Key="secret.txt")
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            intruder.delete_object(Bucket="doughflow", Key="secret.txt")
    # The stack's key reads what was written: nothing above removed it.
    assert boto3.client("s3").get_object(Bucket="doughflow", Key="secret.txt")["Body"].read() == b"kept"


@pytest.mark.slow
def test_results_and_bundles_on_s3(prefect_api, s3_endpoint, tmp_path):
    import fsspec

    from doughflow.packaging.publish import published_problems
    from flows.train import train

    config = load_config(
        None,
        [
            *TINY_OVERRIDES,
            "train.epochs=1",
            f"artifacts_dir={tmp_path}",
            "orchestration.result_storage=s3://doughflow/results",
            "orchestration.publish_url=s3://doughflow/bundles",
        ],
    )
    first = train(config=config)
    again = train(config=config)

    # The rerun found every stage's result on S3 (nothing was persisted locally)...
    states = {run.run_id: run.stage_states for run in load_runs(tmp_path / "registry.sqlite")}
    assert all(states[first["run_id"]][stage] == "Completed" for stage in CACHED_STAGES), states[first["run_id"]]
    assert all(states[again["run_id"]][stage] == "Cached" for stage in CACHED_STAGES), states[again["run_id"]]
    assert again["bundle"] == first["bundle"]
    s3 = fsspec.filesystem("s3", skip_instance_cache=True)
    assert len(s3.ls("doughflow/results")) >= len(CACHED_STAGES)
    assert not (tmp_path / ".prefect-results").exists()

    # ...and the bundle is on S3 under the run that built it, each object's SHA-256 as in the manifest.
    url = f"s3://doughflow/bundles/{first['run_id']}"
    assert first["published"] == again["published"] == url
    local = json.loads((Path(first["bundle"]) / "manifest.json").read_text())
    assert json.loads(s3.cat_file(f"doughflow/bundles/{first['run_id']}/manifest.json")) == local
    assert published_problems(url) == []
    assert {Path(p).name for p in s3.find(f"doughflow/bundles/{first['run_id']}")} >= {"manifest.json", "model.onnx"}
