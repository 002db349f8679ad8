"""The pizza data stages at scale: fetch -> validate -> subsample -> split on Dask vs the imagededup method.

    pip install -e '.[bench]'       # imagehash + pybktree, for the baseline
    python benchmarks/image_prepare.py --images 1000000 --baseline-images 50000

N built-in pizzas (64 px, planted exact, re-encoded, shifted and recoloured copies as in the
default set; customers and corrupt rows scaled with N) are drawn once into
``--work/artifacts/datasets`` (the built-in source's own cache, keyed by the generator config) and
reused by every later run. The stages then run through the functions the ``flows.prepare`` tasks
wrap, with the default pizza config except what must scale with N: shard size, caps relative to
the data (cluster cap ``max_over_mean``, ``n_clusters``), and worker processes (never in-process).

The baseline is imagededup's method on the first ``--baseline-images`` rows of the same set:
``imagehash.phash`` per image (imagededup 0.3.3 installs here but does not import: its
torchvision build lacks ``torchvision::nms`` for our torch), then for each image a Hamming search
within 10 bits (imagededup's default threshold) in a BK-tree of all hashes (``--baseline-search
bktree``, imagededup's ``search_method='bktree'``) or by brute force (``brute``, its default
Cython search, here vectorised numpy), and imagededup's ``find_duplicates_to_remove`` rule (walk
the images in order, keep each one not yet removed and remove its matches).

Peak RSS sums this process and all children (the Dask workers), sampled every 0.2 s, with the
timeline written beside the work folder. CPU seconds of the whole process tree are kept per stage:
on a shared machine, rows / (CPU seconds / 2) is the rate with two free cores. Prints a table, then
one JSON line.

Measured (2-core machine shared with other sessions; `uptime` load 11-15 during the run), 100k
images, source cached in /tmp/doughflow-bench-images/artifacts/datasets (10 shards of 58 MB; drawing
it took 856 s, 2.6 CPU-ms an image), baseline on 50k with brute search:

    stage        wall images/s (s)   CPU s   images/s on 2 free cores
    fetch          6466 (15.5)          4.9      41068
    validate        934 (107.1)        38.3       5221
    subsample      1717 (58.2)         23.1       8658
    split          7403 (6.9)           2.2      89286
    end to end      520                68.5       2919     baseline 846 wall, 2189 a CPU second (1 core)
    precision 1.0000 (baseline 0.0308), recall 1.0000 (0.8659): exact 2804, re-encoded 1246, shifted
    1246, recoloured 1246 planted copies all found (baseline shifted 0.345, recoloured 0.950);
    hard negatives merged 0 (235); peak RSS 1570 MB over all processes (driver 659, workers <= 598),
    at the end of subsample.

The targets of issue 18 (>= 10,000 images/s end to end and 15x the baseline at 1M, <= 1.5 GB) are
missed: 2919 images/s on two free cores, 1.3x the baseline's 2189 on one (it hashes and searches
only; a CPU second, ours does 1460 images, the baseline 2189), 1570 MB. At 20k images (same
settings): 1041 images/s on 2 free cores (CPU s fetch 1.1, validate 17.7, subsample 19.0, split
0.5), precision/recall 1.0, peak 1404 MB. From the two: ~31 CPU s a run that do not grow with N
(workers started per stage and their imports) and ~0.38 CPU ms an image (validate 0.26, subsample
0.05, fetch 0.05, split 0.02), i.e. ~5k images/s at 1M on two free cores, extrapolated. Memory is
not flat: subsample's workers hold ~380 MB (20k) and ~425 MB (100k) before its write, which adds
~120-150 MB to each at both sizes. Per image on
one 10k shard (CPU time): reading the Parquet image column 0.1 ms (I/O bound, varies with load),
header 0.009, PNG decode 0.079, pixel hash 0.003, signals 0.099 (grayscale 0.011, spectrum 0.021,
thumbnail 0.011, colour embedding and the rest ~0.055). The 1M run was not made: its source alone is
~44 CPU minutes of drawing, and each stage's copy of it ~5.8 GB.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.dedup import PeakRSS  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

    from doughflow.config import ExperimentConfig


class TreeCPU(PeakRSS):
    """PeakRSS that also keeps each process's CPU seconds (user + system), so the CPU a stage used
    is known even on a machine shared with other work: rows / (CPU seconds / cores) is the rate the
    stage would reach with the cores to itself. Workers that exit keep their last sample (at most
    0.2 s of CPU is missed per process)."""

    def __init__(self) -> None:
        super().__init__()
        self.cpu: dict[int, float] = {}

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total, now = 0, {}
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss, times = proc.memory_info().rss, proc.cpu_times()
                except psutil.Error:
                    continue
                total += rss
                self.per_process[proc.pid] = max(self.per_process.get(proc.pid, 0), rss)
                self.cpu[proc.pid] = max(self.cpu.get(proc.pid, 0.0), times.user + times.system)
                now[proc.pid] = rss
            self.peak = max(self.peak, total)
            self.timeline.append((time.perf_counter() - self.started, total, now))
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


LABELS = ["pepperoni", "mushroom", "olive", "basil", "pepper"]
NEAR_KINDS = ("exact", "reencoded", "shifted", "recoloured")


def generator_overrides(images: int) -> list[str]:
    """Generator settings for about ``images`` rows: 3% exact and 4% near copies as in the default
    set, one customer per 16 rows (the default's 6.4k rows have 400), a corrupt row per 20k."""
    corrupt = max(4, images // 20000)
    return [
        f"data.source.generator.num_images={round((images - corrupt) / 1.07)}",
        f"data.source.generator.num_customers={max(400, images // 16)}",
        f"data.source.generator.corrupt_rows={corrupt}",
    ]


def stage_config(args: argparse.Namespace, work: Path) -> ExperimentConfig:
    from doughflow.config import load_config

    overrides = generator_overrides(args.images) + [
        f"artifacts_dir={work / 'artifacts'}",
        f"data.rows_per_shard={args.rows_per_shard}",
        f"dask.n_workers={args.workers}",
        f"dask.memory_limit={args.memory_limit}",
        "dask.in_process_below_rows=0",
        f"dask.local_directory={work / 'scratch'}",
        "orchestration.cache=false",
        "data.subsample.cluster.max_per_cluster=null",
        f"data.subsample.cluster.max_over_mean={args.max_over_mean}",
        f"data.subsample.cluster.n_clusters={args.clusters}",
    ]
    return load_config(None, overrides + args.set)


def run_stages(config: ExperimentConfig, run_id: str, meter: TreeCPU | None = None) -> tuple[dict, dict]:
    """The four stages as flows.prepare runs them (the functions its tasks wrap), timed one by one.
    Subsample is the task's body less its scoring against the planted truth, which loads every id
    into this process and is done after the measured part instead (as benchmarks/dedup.py does)."""
    from doughflow.data.columns import groups_in
    from doughflow.data.dask_client import dask_client
    from doughflow.data.dedup.subsample import SubsampleResult, subsample
    from doughflow.data.manifest import DataManifest
    from doughflow.runs import RunPaths
    from doughflow.stages.fetch import fetch
    from doughflow.stages.split import split
    from doughflow.stages.validate import validate

    def subsample_stage(config: ExperimentConfig, paths: RunPaths, valid: DataManifest) -> SubsampleResult:
        data = config.data
        with dask_client(config.dask, rows=valid.rows) as client:
            return subsample(
                valid,
                paths.stage("data/subsample"),
                data.subsample,
                client,
                id_column=data.id_column,
                group_column=groups_in(valid, data.group_column),
                image_column=data.image_column,
                score_truth=False,
            )

    paths = RunPaths(Path(config.artifacts_dir), run_id)
    seconds: dict[str, float] = {}
    cpu: dict[str, float] = {}
    results: dict = {}
    steps = (
        ("fetch", "raw", lambda: fetch(config, paths)),
        ("validate", "validated", lambda: validate(config, paths, results["raw"])),
        ("subsample", "subsampled", lambda: subsample_stage(config, paths, results["validated"].manifest)),
        ("split", "splits", lambda: split(config, paths, results["subsampled"].manifest)),
    )
    for stage, name, run in steps:
        mark, used = time.perf_counter(), meter.cpu_seconds() if meter else 0.0
        results[name] = run()
        seconds[stage] = time.perf_counter() - mark
        time.sleep(0.3)  # one more sample of the stage's workers before they are gone
        cpu[stage] = (meter.cpu_seconds() - used) if meter else 0.0
    results["cpu"] = cpu
    return seconds, results


def truth_table(paths: list[str], rows: int | None = None) -> pd.DataFrame:
    """id, dup_of, dup_kind, recipe and counts of the first ``rows`` rows (all when None)."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames, seen = [], 0
    for path in paths:
        table = pq.read_table(
            path,
            columns=["sample_id", "dup_of", "dup_kind", "defect", "recipe"] + [f"count_{label}" for label in LABELS],
        )
        if rows is not None:
            table = table.slice(0, rows - seen)
        frames.append(table.to_pandas())
        seen += table.num_rows
        if rows is not None and seen >= rows:
            break
    return pd.concat(frames, ignore_index=True)


def removal_scores(truth: pd.DataFrame, removed: dict[str, str]) -> dict:
    """Precision and recall of duplicate removals (removed id -> kept id) against the planted copies
    of the rows in ``truth``, per kind, and hard negatives: removals whose two rows are distinct
    pizzas of the same recipe and counts."""
    ids = set(truth["sample_id"])
    root = dict(
        zip(
            truth["sample_id"],
            np.where(truth["dup_of"].isin(ids) & (truth["dup_of"] != ""), truth["dup_of"], truth["sample_id"]),
        )
    )

    def representative(i: str) -> str:
        for _ in range(100):
            if i not in removed:
                return i
            i = removed[i]
        return i

    looks = {
        i: (r, tuple(c))
        for i, r, c in zip(
            truth["sample_id"], truth["recipe"], truth[[f"count_{label}" for label in LABELS]].itertuples(index=False)
        )
    }
    correct = sum(root.get(r, r) == root.get(k, k) for r, k in removed.items())
    hard = sum(
        root.get(r, r) != root.get(k, k) and looks.get(root.get(r, r)) == looks.get(root.get(k, k))
        for r, k in removed.items()
    )
    planted = truth[(truth["dup_of"] != "") & truth["dup_of"].isin(ids)]
    per_kind = {}
    found_all = 0
    for kind in NEAR_KINDS:
        rows = planted[planted["dup_kind"] == kind]
        found = sum(
            1
            for i, o in zip(rows["sample_id"], rows["dup_of"])
            if (i in removed or o in removed) and representative(i) == representative(o)
        )
        per_kind[kind] = {
            "planted": int(len(rows)),
            "found": int(found),
            "recall": found / len(rows) if len(rows) else None,
        }
        found_all += found
    return {
        "precision": correct / len(removed) if removed else 1.0,
        "recall": found_all / len(planted) if len(planted) else 1.0,
        "removed": len(removed),
        "hard_negatives_merged": int(hard),
        "per_kind": per_kind,
    }


def baseline(paths: list[str], rows: int, search: str, threshold: int = 10) -> dict:
    """imagededup's method: phash each image, search within ``threshold`` bits, remove greedily."""
    import resource

    import imagehash
    import pyarrow.parquet as pq
    from PIL import Image

    started, cpu_started = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    ids, hashes, seen = [], [], 0
    for path in paths:
        table = pq.read_table(path, columns=["sample_id", "image"]).slice(0, rows - seen)
        for sample_id, data in zip(table.column("sample_id").to_pylist(), table.column("image").to_pylist()):
            try:
                value = imagehash.phash(Image.open(io.BytesIO(data)))
            except Exception:  # noqa: BLE001 - imagededup skips files it cannot read
                continue
            ids.append(sample_id)
            hashes.append(int(str(value), 16))
        seen += table.num_rows
        if seen >= rows:
            break
    hashed = time.perf_counter()
    if search == "bktree":
        import pybktree

        tree = pybktree.BKTree(lambda a, b: (a[0] ^ b[0]).bit_count(), [(h, i) for i, h in enumerate(hashes)])
        matches = [[item[1] for _, item in tree.find((h, i), threshold) if item[1] != i] for i, h in enumerate(hashes)]
    else:
        packed = np.array(hashes, dtype=np.uint64)
        matches = []
        for lo in range(0, len(packed), 1024):
            block = np.bitwise_count(packed[lo : lo + 1024, None] ^ packed[None, :])
            for offset, row in enumerate(block):
                matches.append([int(j) for j in np.flatnonzero(row <= threshold) if j != lo + offset])
    removed: dict[str, str] = {}
    for i, found in enumerate(matches):  # find_duplicates_to_remove: keep the first, drop its matches
        if ids[i] in removed:
            continue
        for j in found:
            if ids[j] not in removed and j > i:
                removed[ids[j]] = ids[i]
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_started.ru_utime - cpu_started.ru_stime
    return {
        "images_per_s": seen / seconds,
        "rows": seen,
        "removed": removed,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "hash_seconds": hashed - started,
        "search": search,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--images", type=int, default=100_000, help="rows of the generated set (planted copies included)"
    )
    parser.add_argument("--baseline-images", type=int, default=50_000)
    parser.add_argument(
        "--baseline-search",
        default="brute",
        choices=["bktree", "brute"],
        help="brute: imagededup's default search; bktree: ~10 ms a query at 5k images, growing faster than n",
    )
    parser.add_argument("--rows-per-shard", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--clusters", type=int, default=64)
    parser.add_argument("--max-over-mean", type=float, default=2.0)
    parser.add_argument("--work", default="/tmp/doughflow-bench-images")
    parser.add_argument("--set", nargs="*", default=[], help="more config overrides, key=value")
    args = parser.parse_args(argv)

    import logging

    import pyarrow.parquet as pq

    for name in ("distributed", "doughflow"):  # a quarantined row per line at 1M would drown the table
        logging.getLogger(name).setLevel(logging.ERROR)

    from doughflow.data.sources.builtin import draw_builtin_source

    work = Path(args.work)
    config = stage_config(args, work)
    t = time.perf_counter()
    source = draw_builtin_source(config.data, config.label_names, Path(config.artifacts_dir) / "datasets")
    print(f"source {source} ready in {time.perf_counter() - t:.0f} s (cached after the first run)", file=sys.stderr)
    run_id = f"bench-{args.images}"
    shutil.rmtree(Path(config.artifacts_dir) / run_id, ignore_errors=True)
    shutil.rmtree(work / "scratch", ignore_errors=True)
    with TreeCPU() as peak:
        started = time.perf_counter()
        seconds, results = run_stages(config, run_id, peak)
        total = time.perf_counter() - started
    raw, validated, subsampled, splits = (results[k] for k in ("raw", "validated", "subsampled", "splits"))
    rows = raw.rows
    # scored after the timed and measured part: scoring loads every id into this process
    source_paths = [str(p) for p in sorted(Path(source).glob("*.parquet"))]
    removed_table = pq.read_table(subsampled.removed_path, columns=["id", "reason", "kept_id"]).to_pandas()
    dups = removed_table[removed_table["reason"].isin(["exact_duplicate", "near_duplicate"])]
    ours = removal_scores(truth_table(source_paths), dict(zip(dups["id"], dups["kept_id"])))
    base = baseline(source_paths, args.baseline_images, args.baseline_search)
    base_scores = removal_scores(truth_table(source_paths, base["rows"]), base["removed"])

    print(f"{'':34}{'doughflow (Dask)':>18}{'imagededup method':>20}")
    print(f"{'images':34}{rows:>18}{base['rows']:>20}")
    for stage, s in seconds.items():
        stage_rows = {"fetch": rows, "validate": rows, "subsample": validated.rows_valid, "split": subsampled.rows_out}[
            stage
        ]
        print(f"{stage + ' images/s (s)':34}{f'{stage_rows / s:.0f} ({s:.1f})':>18}{'':>20}")
    cpu = results["cpu"]
    for stage, c in cpu.items():
        print(
            f"{stage + ' CPU s (images/s on 2 free cores)':34}{f'{c:.0f} ({rows / max(c / 2, 1e-9):.0f})':>18}{'':>20}"
        )
    print(f"{'end to end images/s':34}{rows / total:>18.0f}{base['images_per_s']:>20.0f}")
    cpu_rate = rows / (sum(cpu.values()) / args.workers)
    print(f"{'end to end on free cores (CPU-s)':34}{cpu_rate:>18.0f}{base['rows'] / base['cpu_seconds']:>20.0f}")
    print(f"{'precision':34}{ours['precision']:>18.4f}{base_scores['precision']:>20.4f}")
    print(f"{'recall (all planted copies)':34}{ours['recall']:>18.4f}{base_scores['recall']:>20.4f}")
    for kind in NEAR_KINDS:
        mine, theirs = ours["per_kind"][kind], base_scores["per_kind"][kind]
        show = lambda v: "-" if v["recall"] is None else f"{v['recall']:.4f} of {v['planted']}"  # noqa: E731
        print(f"{'  recall ' + kind:34}{show(mine):>18}{show(theirs):>20}")
    print(f"{'hard negatives merged':34}{ours['hard_negatives_merged']:>18}{base_scores['hard_negatives_merged']:>20}")
    print(f"{'duplicate removals':34}{ours['removed']:>18}{base_scores['removed']:>20}")
    print(f"{'peak RSS all processes MB':34}{peak.peak / 2**20:>18.0f}{'':>20}")
    print(
        "peak RSS per process MB (this one first): "
        + ", ".join(f"{v / 2**20:.0f}" for _, v in sorted(peak.per_process.items()))
    )
    timeline = work / f"rss_timeline-{args.images}.csv"
    peak.write_timeline(timeline)
    peak_at = max(peak.timeline, key=lambda sample: sample[1])[0] - (started - peak.started) if peak.timeline else 0.0
    print(f"peak at {peak_at:.0f} s after the start; RSS over time: {timeline}")
    print("steps: " + ", ".join(f"{s.step} {s.seconds}s -{s.rows_in - s.rows_out}" for s in subsampled.steps))
    print("near-dup: " + json.dumps(subsampled.lsh))
    print(f"splits: {splits.rows}; quarantined {validated.rows_quarantined}: {validated.reasons}")
    sizes = subsampled.cluster_sizes
    if sizes:
        largest = sorted(sizes["before"].items(), key=lambda kv: -kv[1])[:5]
        print(
            f"cluster cap {sizes['max_per_cluster']} per cluster; largest before -> after: "
            + ", ".join(f"{k}: {v} -> {sizes.get('after', {}).get(k, 0)}" for k, v in largest)
        )
    print(f"baseline: {base['search']} search, hashing {base['hash_seconds']:.1f} s of {base['seconds']:.1f} s")
    summary = {
        "images_per_s": round(rows / total, 1),
        "baseline_images_per_s": round(base["images_per_s"], 1),
        "peak_rss_mb": round(peak.peak / 2**20, 1),
        "precision": round(ours["precision"], 5),
        "recall": round(ours["recall"], 5),
        "rows": rows,
        "baseline_rows": base["rows"],
        "hard_negatives_merged": ours["hard_negatives_merged"],
        "stage_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "stage_cpu_seconds": {k: round(v, 1) for k, v in cpu.items()},
        "images_per_s_on_free_cores": round(cpu_rate, 1),
        "baseline_images_per_s_on_a_free_core": round(base["rows"] / base["cpu_seconds"], 1),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
