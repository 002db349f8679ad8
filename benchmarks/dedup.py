"""Near-duplicate text dedup: the doughflow subsample stage on Dask vs datasketch used two ways.

    python benchmarks/dedup.py --rows 1000000 --baseline-rows 50000

One generated corpus (doughflow.data.synthetic.textgen, cached under --work), Parquet in and Parquet out for
the stage. datasketch runs on the first --baseline-rows rows of the same corpus, twice:

- its fastest documented path: ``MinHash.bulk`` (``update_batch`` on state reused across documents)
  for the signatures, every document put into ``MinHashLSH`` in one ``insertion_session``, then each
  document queried; a document with an earlier candidate is removed (in favour of the earliest);
- the per-shingle path most examples show: a ``MinHash`` per document, ``update`` per shingle, and
  query-then-insert (a document is removed when it matches one already kept).

Both shingle in Python (``reference_shingles``) and verify nothing, as datasketch leaves that to you.
Peak RSS sums this process and all children (the Dask workers). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class PeakRSS:
    """Samples the RSS of this process tree every 0.2 s."""

    def __init__(self):
        self.peak = 0
        self.per_process: dict[int, int] = {}  # pid -> its own peak, to see who holds the memory
        self.timeline: list[tuple[float, int, dict[int, int]]] = []  # (seconds, total, rss per pid)
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
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

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def write_timeline(self, path: Path) -> None:
        """One row per sample: seconds, total MB, then MB per process (this one first)."""
        pids = sorted(self.per_process)
        lines = ["seconds,total_mb," + ",".join(f"pid{pid}_mb" for pid in pids)]
        for t, total, now in self.timeline:
            lines.append(f"{t:.1f},{total / 2**20:.0f}," + ",".join(f"{now.get(pid, 0) / 2**20:.0f}" for pid in pids))
        path.write_text("\n".join(lines) + "\n")


def _baseline_docs(paths: list[Path], rows: int, shingle_size: int) -> tuple[list[str], list[list[bytes]]]:
    """The first ``rows`` documents as (ids, encoded word shingles), as both baselines feed datasketch."""
    import pyarrow.parquet as pq

    from doughflow.data.dedup.minhash import normalise_text, reference_shingles

    ids: list[str] = []
    shingles: list[list[bytes]] = []
    for path in paths:
        table = pq.read_table(path, columns=["doc_id", "text"]).slice(0, rows - len(ids))
        ids += table.column("doc_id").to_pylist()
        shingles += [[s.encode() for s in reference_shingles(text, "word", shingle_size)]
                     for text in normalise_text(table.column("text")).to_pylist()]
        if len(ids) >= rows:
            break
    return ids, shingles


def baseline_fastest(paths: list[Path], rows: int, threshold: float, num_perm: int, shingle_size: int) -> dict:
    """datasketch's documented fast path: MinHash.bulk, one insertion_session, then a query per document."""
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    ids, shingles = _baseline_docs(paths, rows, shingle_size)
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


def baseline_per_shingle(paths: list[Path], rows: int, threshold: float, num_perm: int, shingle_size: int) -> dict:
    """A MinHash per document updated shingle by shingle, and MinHashLSH query-then-insert."""
    from datasketch import MinHash, MinHashLSH

    started = time.perf_counter()
    ids, shingles = _baseline_docs(paths, rows, shingle_size)
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


def baseline_scores(paths, rows: int, removed: dict, threshold: float) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    truth = pd.concat([pq.read_table(p, columns=["doc_id", "dup_of", "true_jaccard"]).to_pandas() for p in paths])
    truth = truth.iloc[:rows]
    ids = set(truth["doc_id"])
    root = {i: (d or i) for i, d in zip(truth["doc_id"], truth["dup_of"])}
    correct = sum(root[r] == root.get(k, k) for r, k in removed.items())
    planted = truth[(truth["dup_of"] != "") & truth["dup_of"].isin(ids) & (truth["true_jaccard"] >= threshold)]
    found = sum(1 for i, o in zip(planted["doc_id"], planted["dup_of"]) if removed.get(i) and root[removed[i]] == root[o])
    return {"precision": correct / max(len(removed), 1), "recall": found / max(len(planted), 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--rows-per-shard", type=int, default=50_000)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--work", default="/tmp/doughflow-bench")
    parser.add_argument("--verify", default="exact", choices=["exact", "signature", "none"],
                        help="candidate check: true Jaccard of shingles (default) or the MinHash estimate")
    parser.add_argument("--shuffle-method", default="auto", choices=["auto", "tasks", "p2p", "disk"])
    args = parser.parse_args(argv)

    from doughflow.config import DaskConfig, SubsampleConfig
    from doughflow.data.dask_client import dask_client
    from doughflow.data.manifest import DataManifest, ShardInfo
    from doughflow.data.dedup.subsample import subsample
    from doughflow.data.synthetic.textgen import TextCorpusSpec, generate_text_corpus

    work = Path(args.work)
    corpus = work / f"text-{args.rows}-{args.rows_per_shard}"
    if not (corpus / "_SUCCESS").exists():
        t = time.perf_counter()
        generate_text_corpus(TextCorpusSpec(rows=args.rows), corpus, args.rows_per_shard)
        (corpus / "_SUCCESS").write_text("ok")
        print(f"generated {args.rows} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    paths = sorted(corpus.glob("part-*.parquet"))
    manifest = DataManifest(str(corpus), "bench", args.rows, [ShardInfo(str(p), 0, 0, "") for p in paths],
                            ["doc_id", "customer_id", "text", "dup_of", "dup_kind", "true_jaccard"])
    cfg = SubsampleConfig.model_validate({"max_per_id": None, "cluster": {"max_per_cluster": None},
                                          "near_dup": {"kind": "text", "threshold": args.threshold,
                                                       "num_perm": args.num_perm, "verify": args.verify}})
    out = work / f"out-{args.rows}"
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    with PeakRSS() as peak:
        started = time.perf_counter()
        with dask_client(DaskConfig(n_workers=args.workers, memory_limit=args.memory_limit, local_directory=str(work / "scratch"),
                                    shuffle_method=args.shuffle_method)) as client:
            ready = time.perf_counter()
            result = subsample(manifest, out, cfg, client, id_column="doc_id", group_column="customer_id",
                               score_truth=False)
        seconds = time.perf_counter() - started
    # scored after the timed and measured part: scoring loads every id into this process
    import pyarrow.parquet as pq

    from doughflow.data.dedup.subsample import score_against_truth

    truth = score_against_truth([str(p) for p in paths], "doc_id", pq.read_table(result.removed_path).to_pandas(),
                                args.threshold)
    fast = baseline_fastest(paths, args.baseline_rows, args.threshold, args.num_perm, 3)
    fast_scores = baseline_scores(paths, fast["rows"], fast["removed"], args.threshold)
    slow = baseline_per_shingle(paths, args.baseline_rows, args.threshold, args.num_perm, 3)
    slow_scores = baseline_scores(paths, slow["rows"], slow["removed"], args.threshold)
    print(f"{'':28}{'doughflow (Dask)':>18}{'datasketch bulk':>17}{'per shingle':>13}")
    print(f"{'rows':28}{args.rows:>18}{fast['rows']:>17}{slow['rows']:>13}")
    print(f"{'docs/s (incl. cluster start)':28}{args.rows / seconds:>18.0f}{fast['docs_per_s']:>17.0f}"
          f"{slow['docs_per_s']:>13.0f}")
    print(f"{'docs/s (cluster running)':28}{args.rows / (seconds - (ready - started)):>18.0f}")
    print(f"{'precision':28}{truth['precision']:>18.4f}{fast_scores['precision']:>17.4f}{slow_scores['precision']:>13.4f}")
    print(f"{'recall (J >= threshold)':28}{truth['recall']:>18.4f}{fast_scores['recall']:>17.4f}{slow_scores['recall']:>13.4f}")
    print(f"{'peak RSS all processes MB':28}{peak.peak / 2**20:>18.0f}{'':>14}")
    print("peak RSS per process MB (this one first): "
          + ", ".join(f"{v / 2**20:.0f}" for _, v in sorted(peak.per_process.items())))
    peak_at = max(peak.timeline, key=lambda sample: sample[1])[0] - (started - peak.started) if peak.timeline else 0.0
    peak.write_timeline(work / "rss_timeline.csv")
    print(f"peak at {peak_at:.0f} s after the start (cluster ready at {ready - started:.0f} s); "
          f"RSS over time: {work / 'rss_timeline.csv'}")
    print("steps: " + ", ".join(f"{s.step} {s.seconds}s -{s.rows_in - s.rows_out}" for s in result.steps))
    print("lsh: " + json.dumps(result.lsh))
    summary = {"docs_per_s": round(args.rows / seconds, 1), "baseline_docs_per_s": round(fast["docs_per_s"], 1),
               "per_shingle_docs_per_s": round(slow["docs_per_s"], 1), "peak_rss_mb": round(peak.peak / 2**20, 1),
               "precision": round(truth["precision"], 5), "recall": round(truth["recall"], 5),
               "baseline_precision": round(fast_scores["precision"], 5), "baseline_recall": round(fast_scores["recall"], 5),
               "rows": args.rows, "baseline_rows": fast["rows"]}
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
