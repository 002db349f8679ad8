"""The subsample stage on Dask: exact dedup, near-dup, per-id cap and per-cluster cap, in that order.

Out of core: one pass writes a sketch per shard (ids, hashes, signatures, features) and, for exact
dedup and text LSH, the map side of a file shuffle (doughflow.data.dedup.fileshuffle); every decision is a
shuffle on the decision key followed by a pure per-partition function from doughflow.data.dedup.reduce.
Only small things come back to this process: removed keys (8 bytes a row), the candidate edge list
of near-duplicates (two int64 per duplicate), their components (int64 keys and labels) and a
k-means sample; ids per duplicate stay on the workers. Removed rows
go to Parquet files as each step ends; a last pass filters every shard, and ``removed.parquet``
(every removed row with its reason) is streamed together from those files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.config import ClusterCapConfig, NearDupConfig, SubsampleConfig
from doughflow.data.dask_client import gather
from doughflow.data.dedup import reduce as R
from doughflow.data.dedup.lsh import components, lsh_params
from doughflow.data.dedup.sketch import SketchSpec, id_keys, rows_matrix, sketch_shard
from doughflow.data.dedup.textsettings import DEFAULT_TEXT_COLUMN, TextSettings, length_histogram, resolve_text
from doughflow.data.manifest import DataManifest, ShardInfo, file_sha256
from doughflow.data.progress import StageProgress

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger(__name__)

# What a person watching the stage sees move (doughflow.data.progress): shards sketched, the dedup and
# cap steps, shards written.
SUBSAMPLE_PHASES = ("sketching", "dedup", "writing")
DUP_GROUP = "_dup_group"
CLUSTER = "_cluster"


@dataclass
class StepCount:
    step: str
    rows_in: int
    rows_out: int
    reasons: dict[str, int]
    seconds: float


@dataclass
class SubsampleResult:
    manifest: DataManifest
    removed_path: str
    report_path: str
    rows_in: int
    rows_out: int
    steps: list[StepCount] = field(default_factory=list)
    examples: dict = field(default_factory=dict)
    cluster_sizes: dict = field(default_factory=dict)
    lsh: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)

    @property
    def rows_removed(self) -> int:
        return self.rows_in - self.rows_out


def resolve_kind(near: NearDupConfig, modality: str) -> NearDupConfig:
    """``near`` with kind auto made concrete: text for text datasets, image for image datasets."""
    if near.kind == "image" and modality == "text":
        raise ValueError(
            "subsample.near_dup.kind is image, but the rows are text (data.adapter text): "
            "set near_dup.kind to auto or text"
        )
    if near.kind != "auto":
        return near
    return near.model_copy(update={"kind": "text" if modality == "text" else "image"})


def cap_column_of(cfg: SubsampleConfig, group_column: str | None) -> str | None:
    """The column the per-id cap counts by: none when the cap is off or the data has no groups."""
    return (cfg.id_cap_column or group_column) if cfg.max_per_id else None


def spec_for(
    cfg: SubsampleConfig,
    id_column: str,
    group_column: str | None,
    image_column: str,
    parts: int = 0,
    text: TextSettings | None = None,
    modality: str = "image",
    text_column: str | None = None,
) -> SketchSpec:
    """What the sketch pass computes; ``text``: the resolved text settings (kind text)."""
    near = cfg.near_dup
    bands, rows = (0, 0)
    if near.kind == "text" and text is not None:
        bands, rows = lsh_params(text.lsh_threshold, near.num_perm, near.false_negative_weight)
    return SketchSpec(
        id_column=id_column,
        kind=near.kind,
        image_column=image_column,
        text_column=text.text_column if text else (near.text_column or text_column or DEFAULT_TEXT_COLUMN),
        cap_column=cap_column_of(cfg, group_column),
        modality=modality,
        shingle=text.shingle if text else "word",
        shingle_size=text.shingle_size if text else 3,
        num_perm=near.num_perm,
        seed=near.seed,
        scheme=near.scheme,
        image_hash_size=near.image_hash_size,
        image_hash=near.image_hash,
        thumb_size=near.thumb_size,
        image_blocks=near.max_hamming + 1,
        rank_seed=cfg.seed,
        features=cfg.cluster.enabled,
        ranks=bool(cfg.max_per_id or cfg.cluster.enabled),
        signatures=not (near.kind == "text" and near.verify == "exact"),
        lsh_bands=bands,
        lsh_rows=rows,
        parts=parts if cfg.exact_dedup or near.kind != "none" else 0,
    )


def _sorted_keys(removed: pd.DataFrame) -> np.ndarray:
    return np.sort(removed["key"].to_numpy(dtype=np.int64)) if len(removed) else np.zeros(0, np.int64)


def _meta(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


class _Stage:
    """Holds the running state while steps run one after another. Removed rows go to Parquet files
    under ``removed_dir`` as each step finishes; this process keeps only their sorted keys (8 bytes
    a row) and counts, so its memory does not grow with the removed table."""

    def __init__(
        self,
        sketches: _LazySketches,
        rows: int,
        removed_dir: Path,
        client: Client,
        sketch_paths: list[str],
        exact_maps: list[str],
        band_maps: list[str],
        source_paths: list[str],
        id_column: str,
    ) -> None:
        self.sk = sketches
        self.client, self.sketch_paths = client, sketch_paths
        self.source_paths, self.id_column = source_paths, id_column
        self.exact_maps, self.band_maps = exact_maps, band_maps
        self.removed_dir = removed_dir
        removed_dir.mkdir(parents=True, exist_ok=True)
        self.removed_files: list[str] = []
        self._keys: list[np.ndarray] = []
        self._sorted: np.ndarray | None = np.zeros(0, np.int64)
        self.steps: list[StepCount] = []
        self.alive = rows

    def record(self, step: str, removed: pd.DataFrame, started: float) -> None:
        removed = removed[R.REMOVED_COLUMNS].reset_index(drop=True)
        path = str(self.removed_dir / f"{len(self.steps):02d}-{step}.parquet")
        pq.write_table(_removed_table(removed), path)
        self.record_files(step, [path], [removed["key"].to_numpy(dtype=np.int64)], started)

    def record_files(self, step: str, paths: list[str], keys: list[np.ndarray], started: float) -> None:
        """A step whose workers wrote their removed rows to ``paths`` themselves."""
        reasons: dict[str, int] = {}
        for path in paths:
            for entry in pc.value_counts(pq.read_table(path, columns=["reason"]).column("reason")).to_pylist():
                reasons[entry["values"]] = reasons.get(entry["values"], 0) + entry["counts"]
        removed = sum(reasons.values())
        self.steps.append(
            StepCount(step, self.alive, self.alive - removed, reasons, round(time.perf_counter() - started, 2))
        )
        self.alive -= removed
        self.removed_files.extend(paths)
        self._keys.extend(k for k in keys if len(k))
        self._sorted = None
        log.info("%s: removed %d rows (%s)", step, removed, reasons)

    def keys(self) -> np.ndarray:
        if self._sorted is None:
            self._sorted = np.sort(np.concatenate(self._keys)) if self._keys else np.zeros(0, np.int64)
        return self._sorted

    def removed_table(self) -> pd.DataFrame:
        """Every removed row (small data and tests; the stage itself streams the files)."""
        return (
            pd.concat([pq.read_table(p).to_pandas() for p in self.removed_files], ignore_index=True)
            if self.removed_files
            else R.empty_removed()
        )


def _removed_table(removed: pd.DataFrame) -> pa.Table:
    return R.removed_arrow(removed)


def exact_step(stage: _Stage) -> None:
    started = time.perf_counter()
    if stage.exact_maps:  # the sketch pass wrote the shuffle files
        parts = len(stage.exact_maps)
        outs = [str(stage.removed_dir / f"exact-{p:05d}.parquet") for p in range(parts)]
        keys = stage.client.gather(
            stage.client.map(R.exact_part, [stage.exact_maps] * parts, range(parts), outs, pure=False)
        )
        stage.record_files("exact_dedup", outs, keys, started)
        return
    frame = stage.sk[["key", "id", "h1", "h2"]].shuffle("h1")
    removed = frame.map_partitions(R.exact_duplicates, meta=R.empty_removed()).compute()
    stage.record("exact_dedup", removed, started)


def near_step(
    stage: _Stage,
    near: NearDupConfig,
    width: int,
    texts: TextSource | None = None,
    n_examples: int = 6,
    text: TextSettings | None = None,
) -> tuple[dict, pd.DataFrame, list[str]]:
    """Candidates from LSH buckets, verified, then components; returns LSH facts, a few verified
    pairs for the report, and the per-shard group files (for filter_shard). Components run here on
    int64 keys only; the kept row of each is chosen on the workers (component_step)."""
    started = time.perf_counter()
    removed_keys = stage.keys()
    if near.kind == "text":
        assert text is not None, "kind text needs resolved text settings"
        bands, rows = lsh_params(text.lsh_threshold, near.num_perm, near.false_negative_weight)
        facts = {
            "kind": "text",
            "bands": bands,
            "rows": rows,
            "threshold": text.threshold,
            "candidates_at": text.lsh_threshold,
            "num_perm": near.num_perm,
            "shingle": f"{text.shingle} {text.shingle_size}-grams",
            "verify": near.verify,
            "scheme": near.scheme,
        }
        if text.chosen:
            facts["chosen"] = text.describe()
    else:
        bands, rows = near.max_hamming + 1, 0
        facts = {
            "kind": "image",
            "hash": near.image_hash,
            "blocks": bands,
            "max_hamming": near.max_hamming,
            "hash_bits": near.image_hash_size**2,
            "bucket_pair_limit": near.bucket_pair_limit,
            "min_correlation": near.min_correlation,
            "thumb": f"{near.thumb_size}px +-{near.max_shift}px",
        }
    if near.kind == "text":
        edges = text_band_edges(stage, removed_keys, width, bands, rows)
    else:
        edges = image_band_edges(stage, removed_keys, near.bucket_pair_limit)
    edges = edges.drop_duplicates().reset_index(drop=True)
    edges["edge"] = np.arange(len(edges), dtype=np.int64)
    timing = {"candidates": round(time.perf_counter() - started, 2)}
    facts["candidate_edges"] = int(len(edges))
    threshold = text.threshold if near.kind == "text" and text is not None else near.min_correlation
    threshold = threshold if near.verify != "none" else -np.inf
    pairs = pd.DataFrame({"id_a": [], "id_b": [], "score": []})
    edge, score = np.zeros(0, np.int64), np.zeros(0)
    if len(edges):
        if near.verify == "exact" and near.kind == "text" and texts is not None and text is not None:
            edge, score, pairs = texts.exact_scores(edges, near, text, threshold, n_examples)
            timing["exact_check"] = round(time.perf_counter() - started - sum(timing.values()), 2)
        elif near.kind == "image":
            edge, score, pairs = image_scores(stage, edges, near, threshold, n_examples)
            timing["thumbnail_check"] = round(time.perf_counter() - started - sum(timing.values()), 2)
        else:
            ends_meta = pd.DataFrame(
                {
                    "edge": pd.Series(dtype="int64"),
                    "side": pd.Series(dtype="object"),
                    "id": pd.Series(dtype="object"),
                    "sig": pd.Series(dtype="object"),
                }
            )
            ends = stage.sk[["key", "id", "sig"]].map_partitions(
                R.endpoint_rows, edges[["edge", "a", "b"]], "sig", meta=ends_meta
            )
            ver_meta = pd.DataFrame(
                {
                    "edge": pd.Series(dtype="int64"),
                    "id_a": pd.Series(dtype="object"),
                    "id_b": pd.Series(dtype="object"),
                    "score": pd.Series(dtype="float64"),
                }
            )
            verified = ends.shuffle("edge").map_partitions(R.verify_edges, near.kind, width, meta=ver_meta).compute()
            edge, score = verified["edge"].to_numpy(np.int64), verified["score"].to_numpy(np.float64)
            pairs = verified[verified["score"] >= threshold].sort_values(["id_a", "id_b"]).head(n_examples)
            timing["signature_check"] = round(time.perf_counter() - started - sum(timing.values()), 2)
        ok = score >= threshold
        if near.verify != "none":
            facts["rejected_edges"] = int((~ok).sum())
        edge = edge[ok]
    facts["verified_edges"] = int(len(edge))
    facts["seconds"] = timing
    a, b = edges["a"].to_numpy(np.int64)[edge], edges["b"].to_numpy(np.int64)[edge]
    del edges
    nodes, labels = components(a, b)
    group_maps = component_step(stage, nodes, labels, near.keep_per_component, started)
    facts["components"] = int(labels.max()) + 1 if len(labels) else 0
    return facts, pairs, group_maps


def component_step(stage: _Stage, nodes: np.ndarray, labels: np.ndarray, keep: int, started: float) -> list[str]:
    """Remove all but the ``keep`` lowest ids of each component through a file shuffle by component
    (doughflow.data.dedup.reduce.member_map / member_part): this process sends only (key, label) arrays and
    gets back removed keys. Returns the group files, split by source shard, for filter_shard."""
    if len(nodes) == 0:
        stage.record("near_dup", R.empty_removed(), started)
        return []
    client, sketches = stage.client, stage.sketch_paths
    scratch = stage.removed_dir / "_components"
    scratch.mkdir(parents=True, exist_ok=True)
    graph_path = str(scratch / "graph.npz")
    np.savez(graph_path, nodes=nodes, labels=labels)
    shards = len(sketches)
    maps = [str(scratch / f"members-{i:05d}.arrow") for i in range(shards)]
    client.gather(
        client.map(R.member_map, sketches, maps, [graph_path] * shards, range(shards), parts=shards, pure=False)
    )
    outs = [str(stage.removed_dir / f"near-{p:05d}.parquet") for p in range(shards)]
    group_maps = [str(scratch / f"groups-{p:05d}.arrow") for p in range(shards)]
    keys = client.gather(
        client.map(
            R.member_part, [maps] * shards, range(shards), [keep] * shards, outs, group_maps, shards=shards, pure=False
        )
    )
    stage.record_files("near_dup", outs, keys, started)
    return group_maps


def text_band_edges(stage: _Stage, removed_keys: np.ndarray, width: int, bands: int, rows: int) -> pd.DataFrame:
    """Star edges of the MinHash band buckets: the sketch pass wrote each shard's (bucket, key) pairs
    split by bucket (doughflow.data.dedup.fileshuffle); one task per part sorts its pairs into stars.
    Memory per task is one part; this process gets only the edges (two int64 per duplicate)."""
    client, maps = stage.client, stage.band_maps
    parts = len(maps)
    removed = client.scatter(removed_keys, broadcast=True, hash=False)
    found = client.gather(client.map(R.band_part, [maps] * parts, range(parts), removed_keys=removed, pure=False))
    a = np.concatenate([x for x, _ in found]) if found else np.zeros(0, np.int64)
    b = np.concatenate([y for _, y in found]) if found else np.zeros(0, np.int64)
    return pd.DataFrame({"a": a, "b": b})


def image_band_edges(stage: _Stage, removed_keys: np.ndarray, pair_limit: int) -> pd.DataFrame:
    """Candidate pairs of the signature-block buckets the sketch pass wrote as shuffle files, one
    task per part (doughflow.data.dedup.imageverify.band_part); this process gets only the edges."""
    from doughflow.data.dedup import imageverify

    client, maps = stage.client, stage.band_maps
    parts = len(maps)
    removed = client.scatter(removed_keys, broadcast=True, hash=False)
    found = client.gather(
        client.map(
            imageverify.band_part, [maps] * parts, range(parts), removed_keys=removed, pair_limit=pair_limit, pure=False
        )
    )
    a = np.concatenate([x for x, _ in found]) if found else np.zeros(0, np.int64)
    b = np.concatenate([y for _, y in found]) if found else np.zeros(0, np.int64)
    return pd.DataFrame({"a": a, "b": b})


def merge_verified(
    found: list[tuple[np.ndarray, np.ndarray, pd.DataFrame]], n_examples: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The verification parts' (edges, scores, example pairs) as one result: edges sorted with their
    scores, and the first ``n_examples`` pairs by id."""
    edge = np.concatenate([e for e, _, _ in found]) if found else np.zeros(0, np.int64)
    score = np.concatenate([s for _, s, _ in found]) if found else np.zeros(0)
    order = np.argsort(edge, kind="stable")
    pairs = pd.concat([p for _, _, p in found], ignore_index=True).sort_values(["id_a", "id_b"]).head(n_examples)
    return edge[order], score[order], pairs.reset_index(drop=True)


def image_scores(
    stage: _Stage, edges: pd.DataFrame, near: NearDupConfig, threshold: float, n_examples: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(edge, score) per candidate edge, sorted by edge: the thumbnails' best correlation over
    small shifts, computed on the workers through a file shuffle by edge (doughflow.data.dedup.imageverify);
    and the ``n_examples`` passing pairs with the lowest ids."""
    from doughflow.data.dedup import imageverify

    client = stage.client
    scratch = stage.removed_dir / "_verify"
    scratch.mkdir(parents=True, exist_ok=True)
    edges_path = str(scratch / "edges.npz")
    a, b = edges["a"].to_numpy(np.int64), edges["b"].to_numpy(np.int64)
    np.savez(edges_path, a=a, b=b, ends=np.unique(np.concatenate([a, b])))
    shards = len(stage.sketch_paths)
    maps = [str(scratch / f"ends-{i:05d}.arrow") for i in range(shards)]
    client.gather(
        client.map(
            imageverify.endpoint_thumbnails,
            stage.source_paths,
            stage.sketch_paths,
            maps,
            id_column=stage.id_column,
            edges_path=edges_path,
            parts=shards,
            thumb_size=near.thumb_size,
            pure=False,
        )
    )
    found = client.gather(
        client.map(
            imageverify.verify_part,
            [maps] * shards,
            range(shards),
            thumb_size=near.thumb_size,
            max_shift=near.max_shift,
            threshold=threshold,
            examples=n_examples,
            pure=False,
        )
    )
    return merge_verified(found, n_examples)


# Edge ends per exact-verification part. Each end carries its row's shingle hashes (8 bytes each), so
# a part of 50k ends of 50-shingle records is ~20 MB of hashes plus its copies. With one part per shard,
# 200k short records whose 421k candidate edges (character 3-grams, LSH at 0.6) gave ~210k ends a part,
# and both 1 GiB workers were restarted for memory (measured); candidates grow with duplicates and
# with shared field values (a common city), not with shards.
VERIFY_PART_ENDS = 50_000


def verify_parts(edges: int, shards: int) -> int:
    """Parts of the exact verification: one per shard at least, more when the edges need them."""
    return max(1, shards, -(-2 * edges // VERIFY_PART_ENDS))


@dataclass
class TextSource:
    """Where the texts are, for exact verification of candidate pairs (doughflow.data.dedup.textverify)."""

    client: Client
    paths: list[str]
    id_column: str
    text_column: str
    scratch: Path

    def exact_scores(
        self, edges: pd.DataFrame, near: NearDupConfig, text: TextSettings, threshold: float, n_examples: int
    ) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(edge, score) per candidate edge, sorted by edge: true Jaccard of shingle sets, or a
        rapidfuzz ratio for strings up to ``levenshtein_max_chars``, computed on the workers; and
        the ``n_examples`` passing pairs with the lowest ids (ids never come here per edge)."""
        from doughflow.data.dedup import textverify

        self.scratch.mkdir(parents=True, exist_ok=True)
        edges_path = str(self.scratch / "edges.npz")
        a, b = edges["a"].to_numpy(np.int64), edges["b"].to_numpy(np.int64)
        np.savez(edges_path, a=a, b=b, ends=np.unique(np.concatenate([a, b])))
        parts = verify_parts(len(edges), len(self.paths))
        maps = [str(self.scratch / f"ends-{i:05d}.arrow") for i in range(len(self.paths))]
        self.client.gather(
            self.client.map(
                textverify.endpoint_shingles,
                self.paths,
                maps,
                id_column=self.id_column,
                text_column=self.text_column,
                edges_path=edges_path,
                parts=parts,
                kind=text.shingle,
                size=text.shingle_size,
                short_chars=near.levenshtein_max_chars,
                pure=False,
            )
        )
        found = self.client.gather(
            self.client.map(
                textverify.verify_part_scores,
                [maps] * parts,
                range(parts),
                short_chars=near.levenshtein_max_chars,
                threshold=threshold,
                examples=n_examples,
                pure=False,
            )
        )
        return merge_verified(found, n_examples)


def _arrow_strings(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.Array:
    array = pa.array(values) if not isinstance(values, pa.Array) else values
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array.cast(pa.string())


def cap_step(stage: _Stage, frame: dd.DataFrame, column: str, limit: int, reason: str, step: str) -> None:
    """Exact cap on Dask: pre-cap inside each partition, shuffle the rest on the key, cap again."""
    started = time.perf_counter()
    flagged = frame
    over = flagged[flagged["over"]]
    rest = flagged[~flagged["over"]].shuffle(column)
    excess = rest.map_partitions(R.cap_excess, column, limit, reason, meta=R.empty_removed())
    first = over.map_partitions(
        lambda f: pd.DataFrame(
            {
                "key": f["key"].to_numpy(),
                "id": f["id"].to_numpy(),
                "reason": reason,
                "kept_id": "",
                "detail": f[column].astype(str).to_numpy(),
            }
        ),
        meta=R.empty_removed(),
    )
    import dask

    a, b = dask.compute(first, excess)
    stage.record(step, pd.concat([a, b], ignore_index=True), started)


def id_cap_step(stage: _Stage, limit: int) -> None:
    meta = pd.DataFrame(
        {
            "key": pd.Series(dtype="int64"),
            "id": pd.Series(dtype="object"),
            "rank": pd.Series(dtype="int64"),
            "group": pd.Series(dtype="object"),
            "over": pd.Series(dtype="bool"),
        }
    )
    flagged = stage.sk[["key", "id", "rank", "group"]].map_partitions(R.precap, stage.keys(), "group", limit, meta=meta)
    cap_step(stage, flagged, "group", limit, "id_cap", "id_cap")


def cluster_limit(cluster: ClusterCapConfig, alive: int, k: int) -> int:
    """Rows kept per cluster: ``max_per_cluster``, or ``max_over_mean`` x the mean cluster size, the smaller."""
    limits = [cluster.max_per_cluster] if cluster.max_per_cluster is not None else []
    if cluster.max_over_mean is not None:
        limits.append(max(1, int(np.ceil(cluster.max_over_mean * alive / max(k, 1)))))
    return min(limits)


def cluster_step(
    stage: _Stage, cfg: SubsampleConfig, dims: int, n_examples: int = 6, shown_clusters: int = 4
) -> tuple[np.ndarray, dict]:
    """Fit MiniBatchKMeans on a seeded sample of live rows, assign every row once (kept on the
    workers), cap each cluster; returns the centres and the sizes before the cap with example ids
    (lowest ranks) of the largest clusters for the report."""
    from sklearn.cluster import MiniBatchKMeans

    started = time.perf_counter()
    removed_keys = stage.keys()
    fraction = min(1.0, cfg.cluster.sample_rows / max(stage.alive, 1))
    bound = np.uint64(min(int(fraction * 2**64), 2**64 - 1))

    def sample(frame: pd.DataFrame) -> pd.DataFrame:
        frame = R.alive(frame, removed_keys)
        return frame[frame["rank"].to_numpy().view(np.uint64) <= bound][["key", "feat"]]

    meta = pd.DataFrame({"key": pd.Series(dtype="int64"), "feat": pd.Series(dtype="object")})
    feats = stage.sk[["key", "rank", "feat"]].map_partitions(sample, meta=meta).compute()
    feats = feats.sort_values("key", kind="mergesort")  # k-means depends on row order; partitions must not
    matrix = rows_matrix(feats["feat"].to_numpy(), np.float32, dims)
    k = min(cfg.cluster.n_clusters, max(1, len(matrix)))
    model = MiniBatchKMeans(n_clusters=k, random_state=cfg.seed, n_init=3, batch_size=1024).fit(matrix)
    centres = model.cluster_centers_.astype(np.float32)
    meta = pd.DataFrame(
        {
            "key": pd.Series(dtype="int64"),
            "id": pd.Series(dtype="object"),
            "rank": pd.Series(dtype="int64"),
            "cluster": pd.Series(dtype="int64"),
        }
    )
    assigned = (
        stage.sk[["key", "id", "rank", "feat"]]
        .map_partitions(R.assign_clusters, removed_keys, centres, meta=meta)
        .persist()
    )
    sizes_before = assigned["cluster"].value_counts().compute().sort_index()
    limit = cluster_limit(cfg.cluster, int(sizes_before.sum()), k)
    largest = [int(c) for c in sizes_before.sort_values(ascending=False, kind="mergesort").index[:shown_clusters]]
    picked = (
        assigned[assigned["cluster"].isin(largest)]
        .map_partitions(lambda f: f.sort_values(["rank", "id"]).groupby("cluster").head(n_examples), meta=meta)
        .compute()
    )
    picked = picked.sort_values(["cluster", "rank", "id"]).groupby("cluster").head(n_examples)
    examples = {c: picked.loc[picked["cluster"] == c, "id"].astype(str).tolist() for c in largest}
    flag_meta = meta.assign(over=pd.Series(dtype="bool"))
    flagged = assigned.map_partitions(lambda f: R.precap(f, np.zeros(0, np.int64), "cluster", limit), meta=flag_meta)
    cap_step(stage, flagged, "cluster", limit, "cluster_cap", "cluster_cap")
    del assigned
    stage.steps[-1].seconds = round(time.perf_counter() - started, 2)
    return centres, {
        "before": {int(c): int(v) for c, v in sizes_before.items()},
        "sample_rows": int(len(matrix)),
        "n_clusters": int(k),
        "max_per_cluster": limit,
        "examples": examples,
        "embedding": "central colour histogram" if dims == 64 else "hashed word counts",
    }


class _LazySketches:
    """The sketches as a Dask DataFrame, built on first use: the text path never needs it."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self._frame: dd.DataFrame | None = None

    def __getitem__(self, columns: list[str]) -> dd.DataFrame:
        if self._frame is None:
            import dask.dataframe as dd

            self._frame = dd.read_parquet(self.paths, split_row_groups=False)
        return self._frame[columns]


def _group_index(groups: pd.DataFrame) -> tuple[np.ndarray, pa.Array]:
    """(sorted keys, group id per key) of the rows in near-dup components."""
    if len(groups) == 0:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    keys = id_keys(_arrow_strings(groups["id"]))
    order = np.argsort(keys, kind="stable")
    return keys[order], _arrow_strings(groups["group"]).take(pa.array(order))


def _concat_parquet(paths: list[str], out: Path) -> None:
    """One Parquet file from many with the removed-rows schema, one input in memory at a time."""
    schema = _removed_table(R.empty_removed()).schema
    with pq.ParquetWriter(out, schema) as writer:
        for path in paths:
            writer.write_table(pq.read_table(path).cast(schema))


def filter_part(
    part: int,
    path: str,
    sketch_path: str,
    out_path: str,
    id_column: str,
    removed_keys: np.ndarray,
    group_maps: list[str],
    centres: np.ndarray | None,
) -> tuple[int, dict]:
    """filter_shard for source shard ``part``, its near-dup groups read from the component shuffle."""
    return filter_shard(path, sketch_path, out_path, id_column, removed_keys, R.shard_groups(group_maps, part), centres)


def filter_shard(
    path: str,
    sketch_path: str,
    out_path: str,
    id_column: str,
    removed_keys: np.ndarray,
    groups: tuple[np.ndarray, pa.Array],
    centres: np.ndarray | None,
    batch_rows: int = 2048,
) -> tuple[int, dict]:
    """Write a shard's surviving rows, with their near-dup group and cluster for the split and report,
    without the signal columns validation stored (no later stage reads them). ``groups``: (sorted
    keys of rows in a near-dup component, the group id of each), as arrays: a dict of ids would cost
    every worker ~150 bytes per near-duplicate row. Streams ``batch_rows`` rows at a time."""
    from doughflow.data.dedup.signals import SIGNAL_COLUMNS

    group_keys, group_ids = groups
    cluster_of = None
    if centres is not None:  # each kept row's cluster, looked up by key in the sketch
        sketch = pq.read_table(sketch_path, columns=["key", "feat"])
        sketch_keys = sketch.column("key").to_numpy()
        feats = rows_matrix(sketch.column("feat").to_numpy(zero_copy_only=False), np.float32, centres.shape[1])
        distance = (feats**2).sum(1)[:, None] - 2 * feats @ centres.T + (centres**2).sum(1)[None, :]
        labels = distance.argmin(axis=1).astype(np.int32) if len(feats) else np.zeros(0, np.int32)
        order = np.argsort(sketch_keys, kind="stable")
        cluster_of = (sketch_keys[order], labels[order])
        del sketch, feats, distance
    source = pq.ParquetFile(path)
    columns = [name for name in source.schema_arrow.names if name not in SIGNAL_COLUMNS]
    writer: pq.ParquetWriter | None = None
    sizes: dict[int, int] = {}
    rows = 0
    try:
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
            table = pa.Table.from_batches([batch])
            ids = pc.fill_null(pc.cast(table.column(id_column), pa.string()), "").combine_chunks()
            keys = id_keys(ids)
            keep = ~R.in_sorted(keys, removed_keys)
            kept = table.filter(pa.array(keep))
            kept_keys = keys[keep]
            at = np.minimum(np.searchsorted(group_keys, kept_keys), max(len(group_keys) - 1, 0))
            member = R.in_sorted(kept_keys, group_keys)
            group = group_ids.take(pa.array(at)) if len(group_keys) else pa.nulls(len(kept_keys), pa.string())
            group = (
                pc.if_else(pa.array(member), group, pa.scalar("", pa.string()))
                if len(kept_keys)
                else pa.array([], pa.string())
            )
            kept = kept.append_column(DUP_GROUP, group)
            if cluster_of is not None:
                where = np.minimum(np.searchsorted(cluster_of[0], kept_keys), max(len(cluster_of[0]) - 1, 0))
                labels = cluster_of[1][where] if len(cluster_of[0]) else np.zeros(len(kept_keys), np.int32)
                kept = kept.append_column(CLUSTER, pa.array(labels.astype(np.int32), pa.int32()))
                for k, v in zip(*np.unique(labels, return_counts=True)):
                    sizes[int(k)] = sizes.get(int(k), 0) + int(v)
            if writer is None:
                writer = pq.ParquetWriter(out_path, kept.schema)
            writer.write_table(kept)
            rows += kept.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        empty = source.schema_arrow.empty_table().select(columns).append_column(DUP_GROUP, pa.array([], pa.string()))
        if centres is not None:
            empty = empty.append_column(CLUSTER, pa.array([], pa.int32()))
        pq.write_table(empty, out_path)
    return rows, sizes


def text_settings(client: Client, paths: list[str], near: NearDupConfig, text_column: str | None) -> TextSettings:
    """Resolve the text settings; with shingle auto, from a histogram of every row's normalised length
    (one read of the text column per shard, on the workers)."""
    histogram = None
    if near.shingle == "auto":
        column = near.text_column or text_column or DEFAULT_TEXT_COLUMN
        counts = client.gather(client.map(length_histogram, paths, column=column, pure=False))
        histogram = np.sum(counts, axis=0) if counts else np.zeros(1, np.int64)
    return resolve_text(near, histogram, text_column)


def subsample(
    manifest: DataManifest,
    out_dir: Path,
    cfg: SubsampleConfig,
    client: Client,
    *,
    id_column: str,
    group_column: str | None,
    image_column: str = "image",
    score_truth: bool = True,
    modality: str = "image",
    text_column: str | None = None,
    progress: StageProgress | None = None,
) -> SubsampleResult:
    """Run every enabled step of ``cfg`` (SubsampleConfig) on ``client``; see the module docstring.
    ``score_truth``: score against planted ground truth columns when present (loads every id into
    this process: benchmarks score after timing instead). ``modality``: what the rows are (image or
    text: near-dup kind auto follows it); ``text_column``: the rows' text when the config names none.
    ``group_column`` None: the data has no groups, so the per-id cap counts only id_cap_column.
    ``progress`` follows ``SUBSAMPLE_PHASES``: shards sketched, dedup and cap steps done, shards written."""
    progress = progress or StageProgress(SUBSAMPLE_PHASES, disable=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    sketch_dir = out_dir / "_sketch"
    sketch_dir.mkdir(exist_ok=True)
    paths = [str(p) for p in manifest.paths()]
    cfg = cfg.model_copy(update={"near_dup": resolve_kind(cfg.near_dup, modality)})
    text = text_settings(client, paths, cfg.near_dup, text_column) if cfg.near_dup.kind == "text" else None
    spec = spec_for(
        cfg,
        id_column,
        group_column,
        image_column,
        parts=len(paths),
        text=text,
        modality=modality,
        text_column=text_column,
    )
    sketch_paths = [str(sketch_dir / f"sketch-{i:05d}.parquet") for i in range(len(paths))]
    started = time.perf_counter()
    done = gather(client, client.map(sketch_shard, paths, sketch_paths, spec=spec, pure=False), progress, "sketching")
    rows_in = sum(n for n, _ in done)
    quarantined = pd.concat([q for _, q in done], ignore_index=True)
    stage = _Stage(
        _LazySketches(sketch_paths),
        rows_in,
        out_dir / "_removed",
        client,
        sketch_paths,
        exact_maps=[f"{p}.exact.arrow" for p in sketch_paths] if spec.parts else [],
        band_maps=[f"{p}.bands.arrow" for p in sketch_paths]
        if spec.parts and (spec.lsh_bands or spec.kind == "image")
        else [],
        source_paths=paths,
        id_column=id_column,
    )
    bad = pd.DataFrame(
        {
            "key": id_keys([str(i or "") for i in quarantined["id"]]),
            "id": quarantined["id"],
            "reason": "quarantined",
            "kept_id": "",
            "detail": [
                f"{r} ({f} row {n})"
                for r, f, n in zip(quarantined["reason"], quarantined["source_file"], quarantined["source_row"])
            ],
        }
    )
    stage.record("sketch", bad, started)

    near = cfg.near_dup
    width = near.num_perm if near.kind == "text" else (near.image_hash_size**2 + 7) // 8
    facts: dict = {}
    group_maps: list[str] = []
    pairs = pd.DataFrame({"id_a": [], "id_b": [], "score": []})
    progress.start(
        "dedup",
        sum(map(bool, (cfg.exact_dedup, near.kind != "none", cfg.max_per_id and spec.cap_column, cfg.cluster.enabled))),
    )
    if cfg.exact_dedup:
        exact_step(stage)
        progress.advance()
    if near.kind != "none":
        texts = TextSource(client, paths, id_column, text.text_column, sketch_dir / "_verify") if text else None
        facts, pairs, group_maps = near_step(stage, near, width, texts, cfg.report_examples, text)
        progress.advance()
    if cfg.max_per_id and spec.cap_column:
        id_cap_step(stage, cfg.max_per_id)
        progress.advance()
    centres: np.ndarray | None = None
    cluster_sizes: dict[str, Any] = {}
    if cfg.cluster.enabled:
        centres, cluster_sizes = cluster_step(stage, cfg, 256 if spec.payload_is_text() else 64)
        progress.advance()

    started = time.perf_counter()
    removed_keys = stage.keys()
    removed_future = client.scatter(removed_keys, broadcast=True, hash=False)
    outs = [str(out_dir / f"part-{i:05d}.parquet") for i in range(len(paths))]
    written = gather(
        client,
        client.map(
            filter_part,
            range(len(paths)),
            paths,
            sketch_paths,
            outs,
            id_column=id_column,
            removed_keys=removed_future,
            group_maps=group_maps,
            centres=centres,
            pure=False,
        ),
        progress,
        "writing",
    )
    if centres is not None:
        after: dict[int, int] = {}
        for _, sizes in written:
            for k, v in sizes.items():
                after[k] = after.get(k, 0) + v
        cluster_sizes["after"] = dict(sorted(after.items()))
    shards = [ShardInfo(p, n, Path(p).stat().st_size, file_sha256(Path(p))) for p, (n, _) in zip(outs, written)]
    rows_out = sum(s.rows for s in shards)
    stage.steps.append(StepCount("write", stage.alive, rows_out, {}, round(time.perf_counter() - started, 2)))

    removed_path = out_dir / "removed.parquet"
    _concat_parquet(stage.removed_files, removed_path)
    from doughflow.data.dedup.signals import SIGNAL_COLUMNS

    columns = [
        c
        for c in dict.fromkeys(manifest.columns + [DUP_GROUP] + ([CLUSTER] if centres is not None else []))
        if c not in SIGNAL_COLUMNS
    ]
    out_manifest = DataManifest(manifest.source, manifest.fingerprint, rows_out, shards, columns)
    out_manifest.save(out_dir / "manifest.json")
    result = SubsampleResult(
        out_manifest,
        str(removed_path),
        str(out_dir / "subsample_report.json"),
        rows_in,
        rows_out,
        stage.steps,
        examples(stage.removed_files, pairs, cfg.report_examples),
        cluster_sizes,
        facts,
    )
    if score_truth:
        result.truth = score_against_truth(
            paths, id_column, pq.read_table(removed_path).to_pandas(), text.threshold if text else None
        )
    Path(result.report_path).write_text(
        json.dumps({k: v for k, v in asdict(result).items() if k != "manifest"}, indent=2, default=str)
    )
    return result


def examples(removed_files: list[str], pairs: pd.DataFrame, n: int) -> dict:
    """A few removed rows per reason (the lowest ids), and near-dup pairs, for people to eyeball.
    Reads one removed file at a time and keeps n rows per reason."""
    best: dict[str, pd.DataFrame] = {}
    for path in removed_files:
        for reason, part in pq.read_table(path).to_pandas().groupby("reason"):
            both = pd.concat([best[reason], part]) if reason in best else part
            best[reason] = both.sort_values("id").head(n)
    out: dict = {reason: part[["id", "kept_id", "detail"]].to_dict("records") for reason, part in sorted(best.items())}
    if len(pairs):
        out["near_pairs"] = pairs.sort_values(["id_a", "id_b"]).head(n)[["id_a", "id_b", "score"]].to_dict("records")
    return out


def score_against_truth(paths: list[str], id_column: str, removed: pd.DataFrame, threshold: float | None) -> dict:
    """Recall and precision of exact + near-dup removal against planted ground truth (``dup_of`` and
    ``dup_kind`` columns) when the data has it. ``recall`` counts every planted pair; with a
    ``true_jaccard`` column (the review corpus: word 3-gram Jaccard) and a threshold, also the recall
    over the pairs at or above it (``recall_at_threshold``)."""
    schema = pq.read_schema(paths[0]) if paths else None
    if schema is None or "dup_of" not in schema.names:
        return {}
    columns = [id_column, "dup_of", "dup_kind"] + (["true_jaccard"] if "true_jaccard" in schema.names else [])
    truth = pd.concat([pq.read_table(p, columns=columns).to_pandas() for p in paths], ignore_index=True)
    truth = truth.rename(columns={id_column: "id"})
    truth["id"] = truth["id"].astype(str)
    dup_of = truth["dup_of"].fillna("").astype(str)
    ids = pd.Index(truth["id"])
    root = pd.Series(np.where((dup_of != "") & dup_of.isin(ids), dup_of, truth["id"]), index=ids)
    root = root[~root.index.duplicated()]
    dedup = removed[removed["reason"].isin(["exact_duplicate", "near_duplicate"])]
    parent = pd.Series(dedup["kept_id"].to_numpy(), index=dedup["id"].to_numpy())

    def rep(values: np.ndarray) -> np.ndarray:
        """Follow removed -> kept until a kept row (chains are short: exact, then near)."""
        current = values.astype(object)
        for _ in range(100):
            step = parent.reindex(current).to_numpy()
            moved = pd.notna(step)
            if not moved.any():
                break
            current = np.where(moved, step, current)
        return current

    def root_of(values: pd.Series) -> np.ndarray:
        found = root.reindex(values).to_numpy()
        return np.where(pd.notna(found), found, np.asarray(values, dtype=object))

    right = root_of(dedup["id"]) == root_of(dedup["kept_id"])
    correct = int(right.sum())
    kind_of = truth.drop_duplicates("id").set_index("id")["dup_kind"].fillna("")
    removed_kind = kind_of.reindex(dedup["id"]).fillna("").replace("", "original").to_numpy(dtype=object)
    planted = truth[(dup_of != "") & dup_of.isin(ids)]
    a, b = planted["id"].to_numpy(dtype=object), planted["dup_of"].to_numpy(dtype=object)
    touched = pd.Index(a).isin(parent.index) | pd.Index(b).isin(parent.index)
    found = (rep(a) == rep(b)) & touched
    above = {}
    if threshold is not None and "true_jaccard" in planted:
        over = (planted["true_jaccard"] >= threshold).to_numpy()
        above = {
            "recall_at_threshold": float(found[over].mean()) if over.any() else 1.0,
            "planted_at_threshold": int(over.sum()),
        }
    per_kind: dict[str, dict[str, Any]] = {
        kind: {"planted": int(len(g)), "found": int(found[planted["dup_kind"].to_numpy() == kind].sum())}
        for kind, g in planted.groupby("dup_kind")
    }
    for kind in set(removed_kind):  # precision by what the removed row really is ("original": not a planted copy)
        mine = removed_kind == kind
        entry = per_kind.setdefault(kind, {"planted": 0, "found": 0})
        entry.update(removed=int(mine.sum()), correct=int(right[mine].sum()))
    for entry in per_kind.values():
        entry["recall"] = entry["found"] / entry["planted"] if entry["planted"] else None
        entry["precision"] = entry["correct"] / entry["removed"] if entry.get("removed") else None
    return {
        "planted_pairs": int(len(planted)),
        "found_pairs": int(found.sum()),
        "recall": float(found.mean()) if len(found) else 1.0,
        "removed_as_duplicates": int(len(dedup)),
        "correct_removals": int(correct),
        "precision": float(correct / len(dedup)) if len(dedup) else 1.0,
        "per_kind": per_kind,
        "threshold": threshold,
        **above,
    }
