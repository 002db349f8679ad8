"""CSV cells that a spreadsheet cannot run: formula injection neutralised on the way out, undone on the way in.

The verdict template and the page's export are opened in Excel or LibreOffice by people outside the
team, and their cells carry data we did not write (sample ids from the source, reviewers' comments). A
cell beginning with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some spreadsheets
skip before reading a formula) is evaluated as a formula: ``=HYPERLINK(...)`` leaks data to a URL,
``=cmd|...`` ran commands in older Excel. OWASP's remedy is a leading apostrophe, which spreadsheets
show as text and keep when saving back to CSV.

The rule is a bijection on strings, so every real value comes back exactly ("-2 olives", an id like
"-7", a comment that really begins with an apostrophe): a value that matches ``^'*[=+\\-@\\t\\r]`` gets one
more leading apostrophe on export, and a cell read back that matches ``^'+[=+\\-@\\t\\r]`` loses one. A
value like "'hello" (an apostrophe, then no trigger) is left alone both ways.
"""

from __future__ import annotations

import re

TRIGGERS = "=+-@\t\r"
_NEEDS_QUOTE = re.compile(r"^'*[=+\-@\t\r]")
_QUOTED = re.compile(r"^'+[=+\-@\t\r]")

# The same rule for the review page's export, as a JavaScript regular expression literal.
JS_NEEDS_QUOTE = r"/^'*[=+\-@\t\r]/"


def neutralise(value: object) -> str:
    """The text to write in a CSV cell for ``value`` (None is an empty cell)."""
    text = "" if value is None else str(value)
    return "'" + text if _NEEDS_QUOTE.match(text) else text


def restore(cell: str | None) -> str:
    """The value a cell written by :func:`neutralise` (or typed by a person) stands for."""
    text = cell or ""
    return text[1:] if _QUOTED.match(text) else text
