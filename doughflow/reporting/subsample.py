"""The subsampling part of the report: rows in and out per step with reasons, scores against any
planted ground truth, example pairs and groups, the cluster size histogram, and removed image pairs
side by side so a person can judge whether the removals were right."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.data.dedup.subsample import SubsampleResult
from doughflow.reporting.inert import md_code, md_text
from doughflow.reporting.numbers import human, words
from doughflow.reporting.plots import example_grid
from doughflow.reporting.report import table

# Removal reasons whose ``detail`` is the value of an id column (the per-id cap counts by the group
# column unless configured otherwise): shown only as pseudonyms.
ID_DETAIL_REASONS = ("id_cap",)


def subsample_markdown(result: SubsampleResult, *, pseudonymise: Callable[[object], str]) -> str:
    """The subsampling section; ids of customers (the per-id cap's detail) appear as ``pseudonymise(id)``."""
    rows = [
        [
            s.step,
            s.rows_in,
            s.rows_out,
            s.rows_in - s.rows_out,
            ", ".join(f"{k}: {v}" for k, v in s.reasons.items()) or "-",
            s.seconds,
        ]
        for s in result.steps
    ]
    parts = [
        "### Subsampling",
        table(["step", "rows in", "rows out", "removed", "reasons", "time (s)"], rows),
        f"Every removed row, with its reason and the row kept in its place: {md_code(result.removed_path)}.",
    ]
    if result.lsh:
        parts.append("Near-duplicate search: " + md_text(words(result.lsh)) + ".")
    truth = result.truth
    if truth:

        def share(value: float | None) -> str:
            return human(value)

        kinds = [
            [kind, v["planted"], v["found"], share(v.get("recall")), v.get("removed", 0), share(v.get("precision"))]
            for kind, v in sorted(truth["per_kind"].items())
        ]
        parts += [
            f"Against the planted ground truth: recall **{human(truth['recall'])}** ({truth['found_pairs']} of "
            f"{truth['planted_pairs']} planted pairs), precision **{human(truth['precision'])}** "
            f"({truth['correct_removals']} of {truth['removed_as_duplicates']} duplicate removals).",
            "Per kind: recall over planted copies of that kind; precision over removed rows that are "
            'that kind of copy ("original": a row that is not a planted copy).',
            table(["kind", "planted", "found", "recall", "removed", "precision"], kinds),
        ]
    for reason, items in result.examples.items():
        if not items:
            continue
        headers = list(items[0].keys())
        if reason in ID_DETAIL_REASONS:
            items = [{**item, "detail": pseudonymise(item["detail"])} if "detail" in item else item for item in items]
        parts += [f"Examples: {md_text(reason)}", table(headers, [[item[h] for h in headers] for item in items])]
    sizes = result.cluster_sizes
    if sizes:
        parts += cluster_tables(sizes)
    return "\n\n".join(parts)


def cluster_tables(sizes: dict) -> list[str]:
    """What the cluster cap clustered on, each cluster's rows before and after it (largest first),
    and example ids of the largest clusters."""
    after = sizes.get("after", {})
    before = sorted(sizes["before"].items(), key=lambda kv: (-kv[1], int(kv[0])))
    examples = sizes.get("examples", {})
    parts = [
        f"Cluster cap: {sizes['n_clusters']} MiniBatchKMeans clusters of the "
        f"{sizes.get('embedding', 'features')} (fitted on {sizes['sample_rows']} rows), at most "
        f"{sizes['max_per_cluster']} rows each.",
        table(
            ["cluster", "rows before", "rows after", "examples (lowest ranks)"],
            [
                [k, v, after.get(k, after.get(str(k), 0)), ", ".join(examples.get(k, examples.get(str(k), []))[:4])]
                for k, v in before
            ],
        ),
    ]
    return parts


def _images_by_id(shards: list[Path], id_column: str, image_column: str, wanted: set[str]) -> dict[str, np.ndarray]:
    """The decoded images of the ``wanted`` ids, reading shards until every one is found."""
    from doughflow.data.imagecodec import decode_image

    images: dict[str, np.ndarray] = {}
    for shard in shards:
        table = pq.read_table(shard, columns=[id_column, image_column])
        ids = pc.cast(table.column(id_column), pa.string())
        hit = table.filter(pc.is_in(ids, value_set=pa.array(sorted(wanted))))
        for i, data in zip(
            pc.cast(hit.column(id_column), pa.string()).to_pylist(), hit.column(image_column).to_pylist()
        ):
            images[i] = decode_image(data)
        if len(images) == len(wanted):
            break
    return images


def cluster_examples_figure(
    result: SubsampleResult, shards: list[Path], id_column: str, image_column: str, path: Path, per_cluster: int = 6
) -> Path | None:
    """One row of example images per largest cluster, so a person can see what each cluster is."""
    examples = result.cluster_sizes.get("examples", {}) if result.cluster_sizes else {}
    wanted = {i for ids in examples.values() for i in ids[:per_cluster]}
    if not wanted:
        return None
    images = _images_by_id(shards, id_column, image_column, wanted)
    shown, captions = [], []
    for cluster, ids in examples.items():
        row = [i for i in ids[:per_cluster] if i in images]
        shown += (
            [images[i] for i in row] + [np.full_like(images[row[0]], 255)] * (per_cluster - len(row)) if row else []
        )
        captions += [f"cluster {cluster}\n{i}" for i in row] + [""] * (per_cluster - len(row)) if row else []
    if not shown:
        return None
    return example_grid(shown, captions, path, columns=per_cluster)


def removed_pairs_figure(
    result: SubsampleResult, shards: list[Path], id_column: str, image_column: str, path: Path, limit: int = 6
) -> Path | None:
    """Removed near-duplicate images beside the image kept in their place."""
    pairs = [(e["id"], e["kept_id"]) for e in result.examples.get("near_duplicate", [])][:limit]
    if not pairs:
        return None
    wanted = {i for pair in pairs for i in pair}
    images = _images_by_id(shards, id_column, image_column, wanted)
    shown, captions = [], []
    for removed, kept in pairs:
        if removed in images and kept in images:
            shown += [images[kept], images[removed]]
            captions += [f"kept {kept}", f"removed {removed}"]
    if not shown:
        return None
    return example_grid(shown, captions, path, columns=4)
