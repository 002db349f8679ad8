"""Artifact keys are stable per experiment (the UI keeps each key's history across runs), the report's
figures travel inside it as data URIs, and the bundle link is the published copy when there is one."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from doughflow.config import load_config
from doughflow.orchestration.artifacts import artifact_key, experiment_key
from doughflow.reporting.plots import loss_curve
from doughflow.reporting.report import ReportFiles


@given(st.text(max_size=150), st.sampled_from(["report", "metrics", "bundle", "train-progress", "subsample"]))
def test_keys_are_valid_prefect_keys_ending_in_their_kind(experiment, kind):
    key = experiment_key(experiment, kind)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key) and len(key) <= 100
    assert key.endswith(f"-{kind}")
    assert experiment_key(experiment, kind) == key  # the same experiment always gets the same key


def test_examples():
    assert experiment_key("pizza", "report") == "pizza-report"
    assert experiment_key("Pizza_v2.big", "train-progress") == "pizza-v2-big-train-progress"
    assert artifact_key("--A__b--") == "a-b"


def _report(folder: Path) -> ReportFiles:
    folder.mkdir(parents=True)
    loss_curve({"step_loss": [3.0, 2.0, 1.5], "epoch": [{"epoch": 1, "train_loss": 2.0}]}, folder / "loss_curve.png")
    markdown = folder / "report.md"
    markdown.write_text("# run\n\n![loss curve](loss_curve.png)\n\n![elsewhere](../../etc/passwd.png)\n")
    return ReportFiles(str(markdown), str(folder / "report.html"), ["loss_curve.png"])


def test_report_and_run_artifacts_keep_one_key_per_experiment(prefect_api, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from doughflow.stages.report import publish_report, publish_run

    config = load_config(None, ["name=artifact-probe"])
    report = _report(tmp_path / "report")

    @flow(name="artifact-probe")
    def publish(run_id: str, published: str | None) -> None:
        publish_report(config, report, run_id)
        publish_run(
            config,
            {
                "run_id": run_id,
                "bundle": str(tmp_path / "bundle"),
                "metrics": {"test_mae": 0.2},
                "release": {"status": "released"},
                **({"published": published} if published else {}),
            },
        )

    publish("run-1", None)
    publish("run-2", "s3://bucket/bundles/run-2/")
    with get_client(sync_client=True) as client:

        def versions(key: str) -> list:
            return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))

        reports = versions("artifact-probe-report")
        assert len(reports) == 2  # one key, both runs: the UI shows its history
        text = reports[0].data
        assert "![loss curve](data:image/png;base64,iVBORw0KGgo" in text
        assert "![elsewhere](../../etc/passwd.png)" in text  # never read from outside the report's folder
        links = {
            artifact.description.split("`")[1]: re.search(r"\]\((\S+)\)$", artifact.data).group(1)
            for artifact in versions("artifact-probe-bundle")
        }  # a link artifact's data is [text](link)
        assert links == {"run-1": (tmp_path / "bundle").resolve().as_uri(), "run-2": "s3://bucket/bundles/run-2/"}
        assert len(versions("artifact-probe-metrics")) == 2
