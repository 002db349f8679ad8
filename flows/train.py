"""The training pipeline: fetch -> validate -> subsample -> split (the prepare-data sub-flow) -> train ->
evaluate -> export -> deploy formats -> behaviour tests -> release gates -> report -> package -> publish
-> review packet -> MLflow -> record. ``python -m flows.train [--config FILE] [key.path=value ...]``"""

from __future__ import annotations

if __name__ == "__main__":  # parse arguments before Prefect and torch load: --help and typos answer at once
    from doughflow.cli.flow import main

    main("flows.train:train", __doc__)

from prefect import flow

from doughflow.config import ExperimentConfig
from doughflow.orchestration.results import RESULT_SERIALIZER
from doughflow.orchestration.runtime import RELEASE_RUN_LOCKS
from doughflow.runs import RunId
from flows.prepare import prepare_data
from tasks.behaviour import behaviour_task
from tasks.evaluate import evaluate_task
from tasks.export import export_task
from tasks.formats import convert_formats_task
from tasks.package import package_task
from tasks.publish import publish_bundle_task
from tasks.record import record_task
from tasks.release import enforce_release_task, release_gates_task
from tasks.report import publish_report_task, publish_run_task, report_task
from tasks.review import review_packet_task
from tasks.run import result_storage_task, run_summary_task, start_run_task
from tasks.track import open_tracking_task, track_task
from tasks.train import train_task


@flow(
    name="train",
    description="Train, evaluate, export and package a counting model from one experiment config.",
    persist_result=False,
    on_completion=RELEASE_RUN_LOCKS,
    on_failure=RELEASE_RUN_LOCKS,
    on_crashed=RELEASE_RUN_LOCKS,
    on_cancellation=RELEASE_RUN_LOCKS,
)
def train(config: ExperimentConfig = ExperimentConfig(), run_id: RunId | None = None) -> dict:  # noqa: B008 - the UI form shows it
    """Binds the result storage the config names, then runs the pipeline in it."""
    storage = result_storage_task(config.result_storage_url())
    return pipeline.with_options(result_storage=storage)(config, run_id)


@flow(name="train-pipeline", result_serializer=RESULT_SERIALIZER)
def pipeline(config: ExperimentConfig, run_id: RunId | None = None) -> dict:
    paths = start_run_task(config, run_id)
    open_tracking_task(config)
    raw, validated, subsampled, splits = prepare_data(config, paths)
    trained = train_task(config, paths, splits)
    evaluated = evaluate_task(config, paths, splits, trained)
    exported = export_task(config, paths, splits, trained)
    formats = convert_formats_task(config, paths, splits, trained, exported)
    behaviour = behaviour_task(config, paths, trained, formats, splits)
    decision = release_gates_task(config, paths, evaluated, formats, behaviour)
    report = report_task(
        config, paths, raw, validated, subsampled, splits, trained, evaluated, exported, formats, behaviour, decision
    )
    bundle = package_task(config, paths, raw, trained, evaluated, exported, report, splits, formats, decision)
    published = publish_bundle_task(config, bundle, decision)
    publish_report_task(config, report, paths.run_id)
    review_packet_task(config, paths, splits, trained, evaluated, formats, bundle)
    tracked = track_task(config, paths, trained, evaluated, exported, report, bundle, decision, formats, published)
    summary = run_summary_task(paths, bundle, evaluated, trained, exported, formats, decision, published, tracked)
    publish_run_task(config, summary)
    record_task(config, paths, summary, decision)
    enforce_release_task(decision, bundle)
    return summary
