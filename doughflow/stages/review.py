"""Review stage: write the human review packet beside the bundle (artifacts/<run-id>/review/).

Beside the bundle rather than in the current run's folder: when every stage came from the cache, the
bundle is the earlier run's, and flows.review finds the packet as the bundle's sibling. A packet that
is already there for that bundle is left alone (same inputs give the same packet, and a run never
rewrites another run's folder). The packet's samples carry customer ids as pseudonyms; the real ones
stay in the run's data folder for the labelled export (:mod:`doughflow.review.labelled`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.config import ExperimentConfig, label_key
from doughflow.data.adapters import adapter_for, problem_of
from doughflow.data.columns import groups_in
from doughflow.data.split import SplitResult
from doughflow.export.formats import DeployResult, predictor_for
from doughflow.packaging.bundle import MANIFEST, BundleResult
from doughflow.preprocessing import preprocessing_for
from doughflow.privacy import pseudonymiser_for
from doughflow.review.labelled import write_real_groups
from doughflow.review.packet import PACKET, PAGE, TEMPLATE, PacketResult, write_packet
from doughflow.review.sampling import select_for_review
from doughflow.runs import RunPaths
from doughflow.stages.evaluate import EvaluationResult
from doughflow.training.data import load_split_for
from doughflow.training.inference import load_trained_model
from doughflow.training.job import TrainResult

log = logging.getLogger(__name__)


def format_predictions(
    config: ExperimentConfig, trained: TrainResult, formats: DeployResult, inputs: np.ndarray
) -> dict[str, np.ndarray]:
    """Each built non-torch format's counts on the test inputs; formats that cannot run here are left out."""
    model = load_trained_model(trained.model_path, len(config.labels), config.train)
    out = {}
    for result in formats.formats:
        if result.name == "torch":
            continue
        predictor, how = predictor_for(result, model)
        if predictor is None:
            log.info("review packet: %s left out of the format comparison (%s)", result.name, how)
            continue
        out[result.name] = np.asarray(predictor(inputs), np.float32)
    return out


def review_packet(
    config: ExperimentConfig,
    paths: RunPaths,
    splits: SplitResult,
    trained: TrainResult,
    evaluated: EvaluationResult,
    formats: DeployResult,
    bundle: BundleResult,
) -> PacketResult | None:
    if not config.review.enabled:
        return None
    if problem_of(config) != "count":
        log.warning(
            "review packet not written: it asks reviewers to correct counts, and %r is a %s dataset "
            "(set review.enabled=false to silence this)",
            config.data.adapter,
            problem_of(config),
        )
        return None
    review_dir = Path(bundle.bundle_dir).parent / "review"
    run_id = json.loads((Path(bundle.bundle_dir) / MANIFEST).read_text())["run_id"]
    if (review_dir / PACKET).exists() and json.loads((review_dir / PACKET).read_text())["run_id"] == run_id:
        rows = len(json.loads((review_dir / PACKET).read_text())["rows"])
        return PacketResult(str(review_dir), str(review_dir / PAGE), str(review_dir / TEMPLATE), rows)
    data = config.data
    test = load_split_for(config, splits.manifests["test"], desc="decoding test for review")
    predictions = pq.read_table(evaluated.predictions_path).to_pydict()
    row_of = {str(sid): i for i, sid in enumerate(predictions["sample_id"])}
    order = [row_of[sid] for sid in test.ids]
    pred = np.stack([np.asarray(predictions[f"pred_{label_key(label)}"])[order] for label in config.labels], axis=1)
    inputs = preprocessing_for(config).to_tensor(test.images).numpy()
    selected = select_for_review(
        test.targets, pred, config.label_names, config.review, format_predictions(config, trained, formats, inputs)
    )
    wanted = pa.array([test.ids[s.index] for s in selected], pa.string())
    group = groups_in(splits.manifests["test"], data.group_column)
    columns = [data.id_column, data.image_column, *([group] if group else []), *adapter_for(config).target_columns]
    originals = pa.concat_tables(
        [
            table.filter(pc.is_in(table.column(data.id_column).cast(pa.string()), value_set=wanted))
            for table in (pq.read_table(path, columns=columns) for path in splits.manifests["test"].paths())
        ]
    )
    # The packet leaves the data folder: its samples carry pseudonyms; the real ids stay in data/.
    real_groups = pc.cast(originals.column(data.group_column), pa.string())
    write_real_groups(review_dir.parent, pc.cast(originals.column(data.id_column), pa.string()), real_groups)
    pseudonymise = pseudonymiser_for(config)
    originals = originals.set_column(
        originals.schema.get_field_index(data.group_column),
        pa.field(data.group_column, pa.string()),
        pa.array(pseudonymise.many(real_groups.to_pylist()), pa.string()),
    )
    strategy = config.review.model_dump(exclude={"gate"})
    return write_packet(
        review_dir,
        run_id=run_id,
        labels=config.label_names,
        ids=test.ids,
        images=test.images,
        pred=pred,
        true=test.targets,
        selected=selected,
        originals=originals,
        scale=config.review.image_scale,
        max_count=data.max_count,
        strategy=strategy,
    )
