"""The stage task decorator: cache keys per stage, from the config sections each stage reads."""

from __future__ import annotations

from dataclasses import dataclass

from doughflow.caching import select
from doughflow.config import load_config
from doughflow.orchestration.stage_tasks import STAGE_SECTIONS, cache_key_for
from doughflow.runs import RunPaths


@dataclass
class Upstream:
    fingerprint: str
    rows: int


def test_cache_key_ignores_the_run_and_honours_the_switch(tmp_path):
    from doughflow.runs import RunPaths

    config = load_config(None)
    one = {"config": config, "paths": RunPaths(tmp_path, "run-1"), "raw": Upstream("f", 1)}
    two = {**one, "paths": RunPaths(tmp_path, "run-2")}
    assert cache_key_for("validate", one) == cache_key_for("validate", two) is not None
    assert cache_key_for("publish-report", one) is None
    assert cache_key_for("validate", {**one, "config": load_config(None, ["orchestration.cache=false"])}) is None


def test_every_cached_stage_names_real_config_sections():
    config = load_config(None)
    for sections in STAGE_SECTIONS.values():
        select(config, sections)  # raises KeyError on a stale section name


def test_library_versions_and_the_signing_key_reach_only_the_stages_that_use_them(tmp_path, monkeypatch):
    from doughflow.orchestration.stage_tasks import STAGE_LIBRARIES, stage_environment
    from tests.support.signing import write_key_pair

    config = load_config(None)
    assert set(STAGE_LIBRARIES) == set(STAGE_SECTIONS)
    assert set(stage_environment("train", config)["libraries"]) == {"torch", "deepspeed", "pyarrow"}
    assert stage_environment("split", config)["libraries"] == {
        "pyarrow": stage_environment("fetch", config)["libraries"]["pyarrow"]
    }
    monkeypatch.delenv("DOUGHFLOW_SIGNING_KEY", raising=False)
    assert stage_environment("package", config)["signer"] is None
    private, _ = write_key_pair(tmp_path / "k")
    signed = load_config(None, [f"packaging.signing_key={private}"])
    assert stage_environment("package", signed)["signer"] and "signer" not in stage_environment("report", signed)
    one = {"config": config, "paths": RunPaths(tmp_path, "run-1"), "raw": Upstream("f", 1)}
    assert cache_key_for("package", one) != cache_key_for("package", {**one, "config": signed})


def test_io_stages_do_not_retry_a_named_bad_input():
    """A truncated file or a link out of the source folder fails the same way every time: no backoff."""
    from prefect.states import Failed

    from doughflow.data.validate import SchemaError
    from doughflow.orchestration.stage_tasks import retry_unless_permanent

    for error in (ValueError("bad row"), SchemaError("missing column"), FileNotFoundError("gone")):
        assert not retry_unless_permanent(None, None, Failed(data=error))
    for error in (ConnectionError("reset"), TimeoutError(), OSError("flaky disk")):
        assert retry_unless_permanent(None, None, Failed(data=error))
