"""Text near-dup settings a user left empty, chosen from the data: shingles by the measured text length,
the threshold by the shingles, and the LSH bands for a threshold a margin below it.

Why by length: on 200k planted person records (median 55 characters, 8 words) one typo changes a third
of a record's word 3-grams: word 3-grams at 0.7 found 32% of the copies (12.5% of those with typos, none
with swapped names); character 3-grams keep a typo's damage to three shingles of ~50. On 40-word reviews character shingles find the copies too
but cost one MinHash update per character: 11k docs/s against 80k for word 2-grams (one core). So
short texts (median at most ``short_text_chars``) get character 3-grams, longer ones word 2-grams.

Why these thresholds: F1 of exact Jaccard against the planted truth peaked at 0.7 for character
3-grams on records (household members share about 0.65 of a record's 3-grams, as many as a copy with
three edits) and at 0.6 for word 2-grams on reviews (reviews that share a template share at most 0.56).
The whole stage with these defaults on 200k rows: records precision 0.973, recall 0.933 (0.998 of the
single-edit copies); reviews precision 0.9999, recall 0.9996 (README: Subsampling).

Why a candidate margin: datasketch's optimiser picks bands x rows so that a pair exactly at the
threshold becomes a candidate only 87-92% of the time (128 permutations, false-negative weight 0.9).
Choosing them for ``threshold - candidate_margin`` makes that ~99%; exact verification then removes
the extra candidates, so the pairs just above the threshold are no longer dropped at random.

The median is of every row's normalised length (a histogram per shard, summed), so the choice does
not depend on how rows are spread over shards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from doughflow.config import NearDupConfig

DEFAULT_TEXT_COLUMN = "text"
SHINGLE_SIZE = {"char": 3, "word": 2}
THRESHOLD = {"char": 0.7, "word": 0.6}
LENGTH_BINS = 4096  # histogram of normalised lengths; longer texts share the last bin


@dataclass(frozen=True)
class TextSettings:
    """Every text near-dup setting with a value: what the sketch, LSH and verification use."""

    text_column: str
    shingle: str
    shingle_size: int
    threshold: float
    lsh_threshold: float
    median_chars: float | None  # measured when shingle was auto
    chosen: tuple[str, ...]  # the settings chosen here rather than given, e.g. ("shingle", "threshold")

    def describe(self) -> str:
        what = f"{self.shingle} {self.shingle_size}-grams, threshold {self.threshold}"
        if not self.chosen:
            return what
        why = f"; median text {self.median_chars:.0f} characters" if self.median_chars is not None else ""
        return f"{what} (chosen: {', '.join(self.chosen)}{why})"


def length_histogram(path: str, column: str) -> np.ndarray:
    """Counts of normalised text lengths (characters, capped at LENGTH_BINS - 1) of one shard."""
    from doughflow.data.dedup.minhash import normalised_words

    names = pq.read_schema(path).names
    if column not in names:
        raise ValueError(f"{path}: missing column(s) {[column]}; columns present: {names}")
    texts = pq.read_table(path, columns=[column]).column(column)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        raise ValueError(f"{path}: column {column!r} must be text (string), got {texts.type}")
    normal, _, _ = normalised_words(texts.combine_chunks())
    lengths = pc.utf8_length(normal).to_numpy(zero_copy_only=False)
    return np.bincount(np.minimum(lengths, LENGTH_BINS - 1), minlength=LENGTH_BINS)


def median_length(histogram: np.ndarray) -> float | None:
    """Median of the non-empty texts' lengths (empty texts are quarantined, not compared)."""
    counts = histogram.copy()
    counts[0] = 0
    total = int(counts.sum())
    if total == 0:
        return None
    cumulative = np.cumsum(counts)
    low = int(np.searchsorted(cumulative, (total + 1) // 2))
    high = int(np.searchsorted(cumulative, total // 2 + 1))
    return (low + high) / 2


def resolve_text(near: NearDupConfig, histogram: np.ndarray | None, text_column: str | None = None) -> TextSettings:
    """Concrete settings from ``near``; ``histogram`` (of length_histogram, summed over shards) is
    needed only when ``near.shingle`` is auto. ``text_column``: the dataset's text when the config
    names none."""
    chosen: list[str] = []
    median = None
    shingle = near.shingle
    if shingle == "auto":
        if histogram is None:
            raise ValueError("shingle=auto needs the text length histogram")
        median = median_length(histogram)
        shingle = "char" if median is None or median <= near.short_text_chars else "word"
        chosen.append("shingle")
    size = near.shingle_size
    if size is None:
        size = SHINGLE_SIZE[shingle]
        chosen.append("shingle_size")
    threshold = near.threshold
    if threshold is None:
        threshold = THRESHOLD[shingle]
        chosen.append("threshold")
    lsh_threshold = threshold - near.candidate_margin if near.verify != "none" else threshold
    lsh_threshold = float(min(max(lsh_threshold, 0.05), threshold))
    column = near.text_column or text_column or DEFAULT_TEXT_COLUMN
    return TextSettings(column, shingle, size, threshold, round(lsh_threshold, 6), median, tuple(chosen))
