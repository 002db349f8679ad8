"""Formula-injection neutralising: inert in a spreadsheet, and every real value comes back exactly."""

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.review.csv_cells import TRIGGERS, neutralise, restore

# Text that leans towards the interesting prefixes: apostrophes, then a trigger or not.
cells = st.one_of(
    st.text(max_size=12),
    st.builds(
        lambda q, t, rest: "'" * q + t + rest,
        st.integers(0, 3),
        st.sampled_from([*TRIGGERS, "a", "'", " ", ""]),
        st.text(max_size=6),
    ),
)


@settings(max_examples=500, deadline=None)
@given(cells)
def test_round_trip_and_never_a_formula(value):
    cell = neutralise(value)
    assert restore(cell) == value
    assert not cell.startswith(tuple(TRIGGERS))  # a spreadsheet reads it as text
    # through a real CSV writer and reader too (quotes, commas and newlines inside cells)
    out = io.StringIO()
    csv.writer(out).writerow([cell, "x"])
    assert restore(next(csv.reader(io.StringIO(out.getvalue())))[0]) == value


def test_examples():
    assert neutralise('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert neutralise("-2 olives") == "'-2 olives" and restore("'-2 olives") == "-2 olives"
    assert neutralise("'=already") == "''=already" and restore("''=already") == "'=already"
    assert neutralise("'hello") == "'hello" and restore("'hello") == "'hello"
    assert neutralise(None) == "" and neutralise(3) == "3" and restore(None) == ""
