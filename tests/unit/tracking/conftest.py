"""One local MLflow store (SQLite) for the tracking tests: creating its schema costs seconds, so the
tests share it and keep apart by experiment name."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="package")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
