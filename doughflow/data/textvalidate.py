"""Validate for text rows (the text adapter): what every later stage needs from a row's text, checked
for a whole shard at once with Arrow kernels.

A row is quarantined, with its file, row number and reason, when its text (the text columns joined
with spaces) is not UTF-8, is longer than ``data.max_text_chars`` characters, or has no word left after
normalisation (lower case, punctuation dropped: what exact and near-dup compare). Valid rows go on with
their text columns as UTF-8 strings and, with several text columns, the joined text in ``_text``.

Why UTF-8 is checked here: Arrow's CSV reader turns a column with one invalid byte sequence into binary
instead of failing, so one bad row would otherwise make the whole column unreadable as text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from doughflow.data.adapters import JOINED_TEXT, TextRecords, is_plain_value

Problem = tuple[str, str]


def _as_text(column: pa.Array, name: str, problems: list[Problem | None]) -> pa.Array:
    """``column`` as a UTF-8 string array; a binary value that is not UTF-8 becomes null and its row
    gets a problem naming the column and the first bad byte."""
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_string(column.type):
        return column
    if is_plain_value(column.type):
        return column.cast(pa.string())  # a number or date among the text columns, as written
    bad = np.zeros(len(column), bool)
    for row, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as error:
            bad[row] = True
            if problems[row] is None:
                problems[row] = ("text: not UTF-8", f"{name}: not UTF-8 (invalid byte at offset {error.start})")
    if bad.any():
        column = pc.if_else(pa.array(~bad), column, pa.scalar(None, column.type))
    return column.cast(pa.string())


def join_fields(columns: list[pa.Array]) -> pa.Array:
    """The fields of each row joined with one space, empty and null fields left out. (Arrow 26's
    binary_join_element_wise with null_handling="skip" drops rows whose fields are all null, so the
    fields are joined with NUL and the runs of NUL made one space.)"""
    joined = pc.binary_join_element_wise(*[pc.fill_null(c, "") for c in columns], "\x00")
    return pc.replace_substring_regex(pc.utf8_trim(joined, "\x00"), "\x00+", " ")


def text_problems(table: pa.Table, adapter: TextRecords) -> tuple[pa.Table, list[Problem | None]]:
    """(``table`` with its text columns as strings plus the joined text when there are several, the first
    text problem of each row or None)."""
    from doughflow.data.dedup.minhash import normalised_words

    problems: list[Problem | None] = [None] * table.num_rows
    columns = []
    for name in adapter.text_columns:
        text = _as_text(table.column(name).combine_chunks(), name, problems)
        table = table.set_column(table.column_names.index(name), name, text)
        columns.append(text)
    joined = columns[0] if len(columns) == 1 else join_fields(columns)
    joined = pc.fill_null(joined, "")
    if adapter.text_column == JOINED_TEXT:
        table = table.append_column(JOINED_TEXT, joined)
    lengths = pc.utf8_length(joined).to_numpy(zero_copy_only=False)
    normal, _, _ = normalised_words(joined)
    empty = pc.equal(pc.utf8_length(normal), 0).to_numpy(zero_copy_only=False)
    where = " + ".join(adapter.text_columns)
    for row in np.nonzero(lengths > adapter.max_text_chars)[0]:
        if problems[row] is None:
            problems[row] = (
                "text: too long",
                f"{where}: {lengths[row]} characters, above data.max_text_chars {adapter.max_text_chars}",
            )
    for row in np.nonzero(empty)[0]:
        if problems[row] is None:
            problems[row] = ("text: empty", f"{where}: no words (empty, blank or punctuation only)")
    return table, problems
