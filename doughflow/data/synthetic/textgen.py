"""A built-in text corpus (pizza reviews) for near-duplicate work, streamed to Parquet shards.

Like the pizza images, every row is a pure function of ``(seed, position)``: a shard is drawn
without the rows before it, so 1M+ rows never sit in memory. The mess is planted with ground truth:
exact copies, near copies with a controlled share of words replaced (``true_jaccard`` is the exact
word-shingle Jaccard to the original), and hard negatives that share a template prefix with another
review (Jaccard 0.3-0.6) but are not duplicates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from doughflow.data.dedup.minhash import reference_shingles

_SYLLABLES = [
    "ba",
    "ke",
    "ri",
    "mo",
    "tu",
    "za",
    "pe",
    "lo",
    "ni",
    "sa",
    "vo",
    "gu",
    "che",
    "dra",
    "fi",
    "ho",
    "ju",
    "qua",
    "xe",
    "yo",
    "pla",
    "sto",
    "cru",
    "mi",
]
_COMMON = [
    "the",
    "pizza",
    "was",
    "and",
    "crust",
    "cheese",
    "really",
    "good",
    "a",
    "bit",
    "too",
    "with",
    "order",
    "delivery",
    "hot",
    "cold",
    "sauce",
    "great",
    "again",
    "i",
    "we",
    "it",
    "very",
    "late",
    "fresh",
]
SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("customer_id", pa.string()),
        ("text", pa.string()),
        ("dup_of", pa.string()),
        ("dup_kind", pa.string()),
        ("true_jaccard", pa.float32()),
    ]
)


@dataclass(frozen=True)
class TextCorpusSpec:
    rows: int
    seed: int = 11
    words: int = 40
    vocabulary: int = 20000
    exact_rate: float = 0.02
    near_rate: float = 0.08
    hard_negative_rate: float = 0.06
    edit_rate: tuple[float, float] = (0.0, 0.10)
    shingle_size: int = 3
    customers: int = 50000


class TextCorpus:
    def __init__(self, spec: TextCorpusSpec) -> None:
        self.spec = spec
        rng = np.random.default_rng(spec.seed)
        made = {"".join(rng.choice(_SYLLABLES, size=rng.integers(2, 5))) for _ in range(spec.vocabulary * 2)}
        self.vocab = np.array(_COMMON + sorted(made)[: spec.vocabulary])
        ranks = np.arange(1, len(self.vocab) + 1, dtype=np.float64)
        self.cdf = np.cumsum(ranks**-0.9)
        self.cdf /= self.cdf[-1]
        s = spec
        self.bounds = np.cumsum([s.exact_rate, s.near_rate, s.hard_negative_rate])

    def kind(self, position: int) -> str:
        u = (position * 0x9E3779B97F4A7C15 + self.spec.seed * 0xBF58476D1CE4E5B9) % 2**64 / 2**64
        if position == 0 or u >= self.bounds[-1]:
            return "original"
        return ("exact", "near", "hard_negative")[int(np.searchsorted(self.bounds, u, side="right"))]

    def _words(self, rng: np.random.Generator, n: int) -> list[str]:
        return list(self.vocab[np.searchsorted(self.cdf, rng.random(n))])

    def original(self, position: int) -> list[str]:
        return self._words(np.random.default_rng([self.spec.seed, position]), self.spec.words)

    def source(self, position: int, rng: np.random.Generator) -> int:
        while True:
            q = int(rng.integers(0, position))
            if self.kind(q) == "original":
                return q

    def jaccard(self, a: list[str], b: list[str]) -> float:
        sa = set(reference_shingles(" ".join(a), "word", self.spec.shingle_size))
        sb = set(reference_shingles(" ".join(b), "word", self.spec.shingle_size))
        return len(sa & sb) / max(len(sa | sb), 1)

    def row(self, position: int) -> dict:
        kind = self.kind(position)
        rng = np.random.default_rng([self.spec.seed, position, 1])
        doc_id = f"doc-{position:09d}"
        customer = f"c{int(rng.integers(0, self.spec.customers)):06d}"
        if kind == "original":
            return {
                "doc_id": doc_id,
                "customer_id": customer,
                "text": " ".join(self.original(position)).capitalize() + ".",
                "dup_of": "",
                "dup_kind": "",
                "true_jaccard": None,
            }
        q = self.source(position, rng)
        base = self.original(q)
        if kind == "exact":
            words, dup_of = list(base), f"doc-{q:09d}"
        elif kind == "near":
            words = list(base)
            edits = int(round(rng.uniform(*self.spec.edit_rate) * len(words)))
            for i in rng.choice(len(words), size=edits, replace=False):
                words[i] = self._words(rng, 1)[0]
            dup_of = f"doc-{q:09d}"
        else:  # a shared template: the first 46-75% of another review, then new words
            keep = int(len(base) * rng.uniform(0.46, 0.75))
            words, dup_of = base[:keep] + self._words(rng, len(base) - keep), ""
        jac = self.jaccard(base, words)
        return {
            "doc_id": doc_id,
            "customer_id": customer,
            "text": " ".join(words).capitalize() + ".",
            "dup_of": dup_of,
            "dup_kind": kind if kind != "hard_negative" else "",
            "true_jaccard": jac,
        }


def _write(spec: TextCorpusSpec, start: int, stop: int, path: str) -> int:
    corpus = TextCorpus(spec)
    rows = [corpus.row(p) for p in range(start, stop)]
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path)
    return len(rows)


def generate_text_corpus(
    spec: TextCorpusSpec, out_dir: Path, rows_per_shard: int = 50000, workers: int | None = None
) -> list[Path]:
    """Write the corpus as shards, one process per core; each process holds one shard at most."""
    from concurrent.futures import ProcessPoolExecutor

    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = [(s, min(s + rows_per_shard, spec.rows)) for s in range(0, spec.rows, rows_per_shard)]
    paths = [out_dir / f"part-{i:05d}.parquet" for i in range(len(bounds))]
    workers = workers or min(len(bounds), os.cpu_count() or 1)
    if workers <= 1:
        for (a, b), p in zip(bounds, paths):
            _write(spec, a, b, str(p))
        return paths
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write, [spec] * len(bounds), [a for a, _ in bounds], [b for _, b in bounds], map(str, paths)))
    return paths
