"""The compose stack's S3 service, natively: moto's server exactly as docker-compose.yml runs it
(on loopback), Prefect results persisted to s3:// so that a rerun is served from S3's cache, and
the bundle published to S3 with every object matching its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doughflow.config import load_config
from doughflow.registry import load_runs
from tests.support.configs import TINY_OVERRIDES
from tests.support.compose import free_port, port_open, service_command, start, stop, wait_until

CACHED_STAGES = {"fetch", "validate", "subsample", "split", "train", "evaluate", "export-onnx", "deploy-formats",
                 "behaviour-tests", "release-gates", "report", "package"}


@pytest.fixture
def s3_endpoint(tmp_path, monkeypatch):
    """moto_server from the compose `s3` service; boto and s3fs find it through AWS_ENDPOINT_URL."""
    pytest.importorskip("s3fs", reason="s3:// needs the s3 extra: pip install -e '.[s3]'")
    port = free_port()
    log = tmp_path / "moto.log"
    server = start(service_command("s3", {9000: port}), log)
    try:
        wait_until(port_open(port), server, log, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "doughflow",
                            "AWS_SECRET_ACCESS_KEY": "doughflow-secret", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        import fsspec

        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("doughflow")
        yield endpoint
    finally:
        stop(server)


@pytest.mark.slow
def test_results_and_bundles_on_s3(prefect_api, s3_endpoint, tmp_path):
    import fsspec

    from doughflow.packaging.publish import published_problems
    from flows.train import train

    config = load_config(None, [*TINY_OVERRIDES, "train.epochs=1",
                                f"artifacts_dir={tmp_path}", "orchestration.result_storage=s3://doughflow/results",
                                "orchestration.publish_url=s3://doughflow/bundles"])
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
