"""Text near-dup settings left empty are chosen from the measured text length; given ones are kept."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.config import NearDupConfig
from doughflow.data.dedup.textsettings import LENGTH_BINS, length_histogram, median_length, resolve_text


def histogram_of(lengths: list[int]) -> np.ndarray:
    return np.bincount(np.minimum(lengths, LENGTH_BINS - 1), minlength=LENGTH_BINS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=60))
def test_median_of_the_histogram_is_the_median_of_the_non_empty_texts(lengths):
    non_empty = [n for n in lengths if n]
    expected = float(np.median(non_empty)) if non_empty else None
    assert median_length(histogram_of(lengths)) == expected


def test_short_records_get_character_3grams_and_long_texts_word_2grams():
    near = NearDupConfig()
    short = resolve_text(near, histogram_of([40, 55, 60, 70]), "_text")
    assert (short.shingle, short.shingle_size, short.threshold, short.text_column) == ("char", 3, 0.7, "_text")
    assert short.lsh_threshold == pytest.approx(0.6) and short.median_chars == 57.5
    assert short.chosen == ("shingle", "shingle_size", "threshold") and "median text 58 characters" in short.describe()
    long = resolve_text(near, histogram_of([180, 250, 300]))
    assert (long.shingle, long.shingle_size, long.threshold, long.text_column) == ("word", 2, 0.6, "text")
    at_cutoff = resolve_text(near, histogram_of([near.short_text_chars]))
    assert at_cutoff.shingle == "char"


def test_given_settings_are_kept_and_need_no_measurement():
    near = NearDupConfig(shingle="word", shingle_size=3, threshold=0.8, text_column="body", verify="none")
    text = resolve_text(near, None, "_text")
    assert (text.shingle, text.shingle_size, text.threshold, text.text_column) == ("word", 3, 0.8, "body")
    assert text.chosen == () and text.lsh_threshold == 0.8  # no verification: candidates are the result
    with pytest.raises(ValueError, match="histogram"):
        resolve_text(NearDupConfig(), None)


def test_length_histogram_counts_normalised_characters(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["Hello,   World!", "", None, "ça va"]}), path)
    counts = length_histogram(str(path), "text")
    assert counts[len("hello world")] == 1 and counts[len("ça va")] == 1 and counts[0] == 2
    with pytest.raises(ValueError, match=r"t\.parquet: missing column\(s\) \['body'\]"):
        length_histogram(str(path), "body")
