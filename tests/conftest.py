"""Shared fixtures: a Prefect test API for the session, and a tiny pizza set drawn once."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# Property tests judge values, never speed: Hypothesis's default 200 ms limit per example (and its
# too-slow health check) fails tests at random on a shared 2-core machine under load.
settings.register_profile("doughflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("doughflow")

from doughflow.config import ExperimentConfig, load_config  # noqa: E402
from doughflow.data.synthetic.pizza import generate_pizza_dataset  # noqa: E402
from tests.support.configs import TINY_OVERRIDES  # noqa: E402


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (torch, Prefect, the pipeline, the test modules) is moved out of the
    garbage collector's sight, as the flow CLI does after its imports (doughflow/cli/flow.py). A full
    collection otherwise walks all of it: measured 0.55 s with the pipeline's libraries imported and
    0.76 s each after two in-process flows (1.1 million objects), and coremltools runs one per CoreML
    conversion, two per flow; after the freeze, 0.06 s. Nothing is lost: what tests create is collected
    as before."""
    gc.freeze()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One Prefect API for all flow tests; a temporary PREFECT_HOME keeps the user's state clean. A
    temporary API, so without run heartbeats, as ``python -m flows.train`` runs on its own temporary one
    (doughflow/orchestration/local_api.py)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect_home"))
    from prefect.testing.utilities import prefect_test_harness

    from doughflow.orchestration.local_api import without_heartbeats

    with prefect_test_harness(server_startup_timeout=180), without_heartbeats():
        yield


@pytest.fixture
def tiny_config(tmp_path) -> ExperimentConfig:
    return load_config(None, TINY_OVERRIDES + [f"artifacts_dir={tmp_path / 'artifacts'}"])


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """The tiny pizza set as Parquet shards (with planted copies and corrupt rows)."""
    config = load_config(None, TINY_OVERRIDES)
    out = tmp_path_factory.mktemp("tiny_source")
    generate_pizza_dataset(
        config.data.source.generator,
        config.labels,
        out,
        image_size=config.data.image_size,
        rows_per_shard=config.data.rows_per_shard,
        workers=1,
    )
    return out
