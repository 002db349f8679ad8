"""Near-duplicate text dedup: the doughflow subsample stage on Dask, with the default settings beside
tuned ones, on planted reviews or planted person records, and straightforward datasketch as a baseline.

    python benchmarks/dedup.py --corpus reviews --rows 200000 --repeats 3
    python benchmarks/dedup.py --corpus records --rows 200000 --repeats 3 --shingle char --shingle-size 3 --threshold 0.5
    python benchmarks/dedup.py --corpus reviews --rows 200000 --shingle word --shingle-size 3 --threshold 0.7 \\
        --verify signature --candidate-margin 0          # the settings that were the defaults before

One generated corpus (doughflow.data.synthetic.textgen or .records, cached under --work) goes through the
text adapter's validate once (timed apart), then the subsample stage runs --repeats times with the
default near-dup settings (``near_dup: {}``: shingles, threshold and verification chosen by the stage)
and, when any of --shingle, --shingle-size, --threshold, --verify or --candidate-margin is given, as
many times with those.
Throughput is rows / seconds of the stage (cluster start excluded); the best and the median of the
repeats are printed, as the machine may be shared. Precision and recall are scored against the
planted truth after the timed part. datasketch runs on the first --baseline-rows rows (0: skipped) of the
same corpus, word 3-grams shingled in Python (it verifies nothing; that is left to its user), two ways:
its fastest documented path (``MinHash.bulk``, one ``insertion_session``, then a query per document)
and the per-shingle ``update`` with query-then-insert that most examples show (~1k docs/s). Peak RSS sums this process and all children (the Dask workers). Prints a table,
then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class PeakRSS:
    """Samples the RSS of this process tree every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0
        self.per_process: dict[int, int] = {}  # pid -> its own peak, to see who holds the memory
        self.timeline: list[tuple[float, int, dict[int, int]]] = []  # (seconds, total, rss per pid)
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total, now = 0, {}
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                self.per_process[proc.pid] = max(self.per_process.get(proc.pid, 0), rss)
                now[proc.pid] = rss
            self.peak = max(self.peak, total)
            self.timeline.append((time.perf_counter() - self.started, total, now))
            time.sleep(0.2)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def write_timeline(self, path: Path) -> None:
        """One row per sample: seconds, total MB, then MB per process (this one first)."""
        pids = sorted(self.per_process)
        lines = ["seconds,total_mb," + ",".join(f"pid{pid}_mb" for pid in pids)]
        for t, total, now in self.timeline:
            lines.append(f"{t:.1f},{total / 2**20:.0f}," + ",".join(f"{now.get(pid, 0) / 2**20:.0f}" for pid in pids))
        path.write_text("\n".join(lines) + "\n")


def _baseline_docs(
    paths: list[str], rows: int, shingle_size: int, id_column: str, text_column: str
) -> tuple[list[str], list[list[bytes]]]:
    """The first ``rows`` documents as (ids, encoded word shingles), as both baselines feed datasketch."""
    import pyarrow.parquet as pq

    from doughflow.data.dedup.minhash import normalise_text, reference_shingles

    ids: list[str] = []
    shingles: list[list[bytes]] = []
    for path in paths:
        table = pq.read_table(path, columns=[id_column, text_column]).slice(0, rows - len(ids))
        ids += [str(i) for i in table.column(id_column).to_pylist()]
        shingles += [
            [s.encode() for s in reference_shingles(text, "word", shingle_size)]
            for text in normalise_text(table.column(text_column)).to_pylist()
        ]
        if len(ids) >= rows:
            break
    return ids, shingles


def baseline_fastest(
    paths: list[str],
    rows: int,
    threshold: float,
    num_perm: int,
    shingle_size: int,
    id_column: str = "doc_id",
    text_column: str = "text",
) -> dict:
    """datasketch's documented fast path: MinHash.bulk, one insertion_session, then a query per document
    (a document with an earlier candidate is removed in favour of the earliest)."""
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    ids, shingles = _baseline_docs(paths, rows, shingle_size, id_column, text_column)
    sketches = MinHash.bulk(shingles, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    with lsh.insertion_session() as session:
        for position, sketch in enumerate(sketches):
            session.insert(position, sketch, check_duplication=False)
    kept_of: dict[str, str] = {}
    for position, sketch in enumerate(sketches):
        earlier = [hit for hit in lsh.query(sketch) if hit < position]
        if earlier:
            kept_of[ids[position]] = ids[min(earlier)]
    seconds = time.perf_counter() - started
    return {"docs_per_s": len(ids) / seconds, "rows": len(ids), "removed": kept_of, "seconds": seconds}


def baseline(
    paths: list[str],
    rows: int,
    threshold: float,
    num_perm: int,
    shingle_size: int,
    id_column: str = "doc_id",
    text_column: str = "text",
) -> dict:
    """The path most examples show: a MinHash per document updated shingle by shingle, MinHashLSH
    query-then-insert (a document is removed when it matches one already kept)."""
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    ids, shingles = _baseline_docs(paths, rows, shingle_size, id_column, text_column)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept_of: dict[str, str] = {}
    for doc_id, doc_shingles in zip(ids, shingles):
        m = MinHash(num_perm=num_perm)
        for shingle in doc_shingles:
            m.update(shingle)
        hits = lsh.query(m)
        if hits:
            kept_of[doc_id] = min(hits)
        else:
            lsh.insert(doc_id, m)
    seconds = time.perf_counter() - started
    return {"docs_per_s": len(ids) / seconds, "rows": len(ids), "removed": kept_of, "seconds": seconds}


def baseline_scores(paths: list[str], rows: int, removed: dict, threshold: float, id_column: str = "doc_id") -> dict:
    """Precision of the baseline's removals and its recall over every planted pair in its rows."""
    import pandas as pd
    import pyarrow.parquet as pq

    truth = pd.concat([pq.read_table(p, columns=[id_column, "dup_of"]).to_pandas() for p in paths])
    truth = truth.iloc[:rows]
    ids = set(truth[id_column])
    root = {i: (d or i) for i, d in zip(truth[id_column], truth["dup_of"])}
    correct = sum(root[r] == root.get(k, k) for r, k in removed.items())
    planted = truth[(truth["dup_of"] != "") & truth["dup_of"].isin(ids)]
    found = sum(
        1 for i, o in zip(planted[id_column], planted["dup_of"]) if removed.get(i) and root[removed[i]] == root[o]
    )
    return {"precision": correct / max(len(removed), 1), "recall": found / max(len(planted), 1)}


def make_corpus(kind: str, rows: int, rows_per_shard: int, work: Path) -> tuple[Path, list[str], str]:
    """(folder of Parquet shards, text columns, id column), generated once per (kind, rows, shard size)."""
    from doughflow.data.synthetic.records import FIELDS, RecordCorpusSpec, generate_records
    from doughflow.data.synthetic.textgen import TextCorpusSpec, generate_text_corpus

    corpus = work / f"{kind}-{rows}-{rows_per_shard}"
    if not (corpus / "_SUCCESS").exists():
        t = time.perf_counter()
        if kind == "records":
            generate_records(RecordCorpusSpec(rows=rows), corpus, rows_per_shard)
        else:
            generate_text_corpus(TextCorpusSpec(rows=rows), corpus, rows_per_shard)
        (corpus / "_SUCCESS").write_text("ok")
        print(f"generated {rows} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    if kind == "records":
        return corpus, list(FIELDS), "rec_id"
    return corpus, ["text"], "doc_id"


def validate_corpus(corpus: Path, text_columns: list[str], id_column: str, out: Path) -> tuple[Any, str, float]:
    """The text adapter's validate over the corpus: (valid manifest, the column compared, rows/s)."""
    import pyarrow.parquet as pq

    from doughflow.data.adapters import TextRecords
    from doughflow.data.manifest import DataManifest, ShardInfo
    from doughflow.data.validate import validate_shards

    paths = sorted(str(p) for p in corpus.glob("*.parquet"))
    rows = [pq.read_metadata(p).num_rows for p in paths]
    manifest = DataManifest(
        str(corpus),
        "bench",
        sum(rows),
        [ShardInfo(p, n, 0, "") for p, n in zip(paths, rows)],
        pq.read_schema(paths[0]).names,
    )
    adapter = TextRecords([], text_columns)
    started = time.perf_counter()
    result = validate_shards(
        manifest,
        out,
        id_column=id_column,
        image_column="image",
        group_column=None,
        target_columns=[],
        max_count=0,
        adapter=adapter,
    )
    return result.manifest, adapter.text_column, sum(rows) / (time.perf_counter() - started)


def run_stage(
    manifest: Any, cfg: Any, args: argparse.Namespace, out: Path, id_column: str, text_column: str
) -> tuple[Any, float, float]:
    """One timed run of the subsample stage: (result, seconds with the cluster running, seconds in all)."""
    import shutil

    from doughflow.config import DaskConfig
    from doughflow.data.dask_client import dask_client
    from doughflow.data.dedup.subsample import subsample

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    with dask_client(
        DaskConfig(
            n_workers=args.workers,
            memory_limit=args.memory_limit,
            local_directory=str(Path(args.work) / "scratch"),
            in_process_below_rows=0,
            shuffle_method=args.shuffle_method,
        )
    ) as client:
        ready = time.perf_counter()
        result = subsample(
            manifest,
            out,
            cfg,
            client,
            id_column=id_column,
            group_column=None,
            score_truth=False,
            modality="text",
            text_column=text_column,
        )
    done = time.perf_counter()
    return result, done - ready, done - started


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="reviews", choices=["reviews", "records"])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--rows-per-shard", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setting: best and median are printed")
    parser.add_argument("--shingle", choices=["auto", "word", "char"], help="tuned run: shingles")
    parser.add_argument("--shingle-size", type=int, help="tuned run: n of the n-grams")
    parser.add_argument("--threshold", type=float, help="tuned run: Jaccard threshold")
    parser.add_argument("--verify", choices=["exact", "signature", "none"], help="tuned run: candidate check")
    parser.add_argument("--candidate-margin", type=float, help="tuned run: LSH tuned this far below the threshold")
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--work", default="/tmp/doughflow-bench")
    parser.add_argument("--shuffle-method", default="auto", choices=["auto", "tasks", "p2p", "disk"])
    args = parser.parse_args(argv)

    import statistics

    import pyarrow.parquet as pq

    from doughflow.config import SubsampleConfig
    from doughflow.data.dedup.subsample import score_against_truth

    work = Path(args.work)
    corpus, text_columns, id_column = make_corpus(args.corpus, args.rows, args.rows_per_shard, work)
    valid, text_column, validate_rate = validate_corpus(corpus, text_columns, id_column, work / f"valid-{args.corpus}")
    base = {"max_per_id": None, "cluster": {"max_per_cluster": None}}
    settings = {"default": {"num_perm": args.num_perm}}
    tuned = {
        "shingle": args.shingle,
        "shingle_size": args.shingle_size,
        "threshold": args.threshold,
        "verify": args.verify,
        "candidate_margin": args.candidate_margin,
    }
    if any(v is not None for v in tuned.values()):
        settings["tuned"] = {"num_perm": args.num_perm, **{k: v for k, v in tuned.items() if v is not None}}
    paths = [str(s.path) for s in valid.shards]
    columns: dict[str, dict] = {}
    for name, near in settings.items():
        cfg = SubsampleConfig.model_validate({**base, "near_dup": near})
        rates, totals, result = [], [], None
        with PeakRSS() as peak:
            for _ in range(args.repeats):
                result, running, total = run_stage(
                    valid, cfg, args, work / f"out-{args.corpus}-{name}", id_column, text_column
                )
                rates.append(args.rows / running)
                totals.append(args.rows / total)
        assert result is not None, "--repeats must be at least 1"
        # scored after the timed and measured part: scoring loads every id into this process
        truth = score_against_truth(
            paths, id_column, pq.read_table(result.removed_path).to_pandas(), result.lsh.get("threshold")
        )
        columns[name] = {
            "docs_per_s_best": max(rates),
            "docs_per_s_median": statistics.median(rates),
            "docs_per_s_incl_start": statistics.median(totals),
            "precision": truth["precision"],
            "recall": truth["recall"],
            "recall_at_threshold": truth.get("recall_at_threshold"),
            "peak_rss_mb": peak.peak / 2**20,
            "lsh": result.lsh,
            "per_kind": {k: (v.get("recall"), v.get("precision")) for k, v in truth["per_kind"].items()},
        }
    if args.baseline_rows:
        threshold = columns.get("tuned", columns["default"])["lsh"]["threshold"]
        for name, method in (("datasketch bulk", baseline_fastest), ("datasketch per shingle", baseline)):
            run = method(paths, args.baseline_rows, threshold, args.num_perm, 3, id_column, text_column)
            scores = baseline_scores(paths, run["rows"], run["removed"], threshold, id_column)
            columns[name] = {
                "docs_per_s_best": run["docs_per_s"],
                "docs_per_s_median": run["docs_per_s"],
                "docs_per_s_incl_start": run["docs_per_s"],
                "precision": scores["precision"],
                "recall": scores["recall"],
                "recall_at_threshold": None,
                "peak_rss_mb": 0.0,
                "lsh": {"shingle": "word 3-grams", "threshold": threshold},
                "per_kind": {},
            }
    names = list(columns)
    print(
        f"{args.corpus}: {args.rows} rows (datasketch: first {args.baseline_rows}); validate {validate_rate:.0f} rows/s"
    )
    print(f"{'':30}" + "".join(f"{n:>24}" for n in names))
    print(
        f"{'settings':30}"
        + "".join(
            f"{c['lsh'].get('shingle', '-') + ' @' + str(c['lsh'].get('threshold')):>24}" for c in columns.values()
        )
    )
    for key, label, fmt in (
        ("docs_per_s_best", "docs/s best (cluster running)", ".0f"),
        ("docs_per_s_median", "docs/s median", ".0f"),
        ("docs_per_s_incl_start", "docs/s median incl. start", ".0f"),
        ("precision", "precision", ".4f"),
        ("recall", "recall (all planted)", ".4f"),
        ("recall_at_threshold", "recall (true J >= threshold)", ".4f"),
        ("peak_rss_mb", "peak RSS all processes MB", ".0f"),
    ):
        cells = [format(c[key], fmt) if c[key] is not None else "-" for c in columns.values()]
        print(f"{label:30}" + "".join(f"{cell:>24}" for cell in cells))
    for name in ("default", "tuned"):
        if name in columns:
            print(f"{name} per kind (recall, precision): " + json.dumps(columns[name]["per_kind"]))
            print(f"{name} lsh: " + json.dumps(columns[name]["lsh"]))
    summary = {
        "corpus": args.corpus,
        "rows": args.rows,
        "repeats": args.repeats,
        **{
            f"{name.replace(' ', '_')}_{k}": (round(v, 5) if isinstance(v, float) else v)
            for name, c in columns.items()
            for k, v in c.items()
            if k not in ("lsh", "per_kind")
        },
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
