"""Pages that cannot run what the data put in them: escaping for Markdown and HTML, and a strict CSP.

Sample ids, group ids, class names, error texts and reviewer names come from files we did not write, and
they reach ``report.html``, the tuning report, the model card and ``review.html``. A payload such as
``<img src=x onerror=...>`` in an id would run in the browser of whoever opens the page, with the page's
data at hand. Three layers keep it text:

1. Data-derived strings are escaped before they enter Markdown (:func:`md_text`, :func:`md_code`): HTML
   metacharacters become entities and Markdown punctuation is backslash-escaped, so an id can neither
   open a tag nor become a link, an image or emphasis - in our HTML and in any other Markdown renderer
   (the Prefect UI shows the same text as an artifact).
2. Markdown is rendered with raw HTML switched off (Python-Markdown's ``html_block`` preprocessor and
   ``html`` inline pattern removed), and a tree pass keeps only images of the report's own figures
   (inlined as data URIs), links to ``http(s)``/``#`` targets, and no ``on*`` attributes; the page shell
   is a Jinja2 template with autoescape on.
3. Every page carries a Content-Security-Policy meta tag: nothing loads from anywhere (``default-src
   'none'``), images only from data URIs, and scripts only by hash (review.html) or not at all, which
   also forbids inline event handlers and ``javascript:`` URLs should anything slip through 1 and 2.

Measured on Python-Markdown 3.11 and chromium: ``<script>``, ``<img onerror>``, ``<svg onload>``,
``[x](javascript:...)`` and ``![x](http://...)`` in a table cell, a heading, a code span or a paragraph
all render as their text and run nothing (tests/unit/reporting/test_inert.py,
tests/security/test_pages.py).
"""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as etree
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import markdown as markdown_lib
from markdown.treeprocessors import Treeprocessor
from markupsafe import Markup


class Md(str):
    """A string that already is Markdown (built by :func:`md_code` or our own code): :func:`md_text`
    and the report's ``table`` leave it as it is."""


# Markdown punctuation that can start markup anywhere in a line (tables, emphasis, links, code, escapes).
# An underscore between two letters or digits cannot open or close emphasis (Python-Markdown and CommonMark
# agree), so ids like count_olive stay readable in report.md; "!" only matters before "[", escaped anyway.
_INLINE = re.compile(r"([\\`*\[\]|]|(?<![^\W_])_|_(?![^\W_]))")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
# What starts a block when a value begins a line: "#" (a heading, in Python-Markdown even without a
# space), a list marker "-" or "+" before a space (or a rule "---"), or digits, a dot and a space.
_BLOCK_START = re.compile(r"^(?:(#|[+\-](?=\s|$|[+\-]))|(\d+)\.(?=\s|$))")


def _one_line(value: object) -> str:
    """Line breaks as spaces (a newline inside a table cell would end the table) and other control
    characters as U+FFFD: Python-Markdown marks its placeholders with STX/ETX, which data must not forge."""
    text = " ".join(str(value).splitlines()) if value is not None else ""
    return _CONTROL.sub("\ufffd", text)


def md_text(value: object, *, line_start: bool = True) -> str:
    """``value`` as Markdown text that renders to exactly its characters and never to markup (on one line,
    control characters replaced); ``Md`` values pass as they are. ``line_start=False`` for a place that
    cannot begin a block (a table cell), where a leading "-" or "1." needs no escape."""
    if isinstance(value, Md):
        return value
    text = _INLINE.sub(r"\\\1", _one_line(value))
    text = "".join(_HTML.get(char, char) for char in text)
    if not line_start:
        return text
    return _BLOCK_START.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\.", text)


def md_code(value: object) -> Md:
    """``value`` as a Markdown code span, fenced by more backticks than it holds (CommonMark's rule, which
    Python-Markdown follows), so a backtick in a path or URL cannot close the span early."""
    text = _one_line(value)
    if not text:
        return Md("")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Md(f"{fence}{pad}{text}{pad}{fence}")


SAFE_HREF = re.compile(r"^(https?://|#)", re.IGNORECASE)


class _InertTree(Treeprocessor):
    """Keep figures (inlined), safe links and plain markup; drop everything else that could fetch or run."""

    def __init__(self, md: markdown_lib.Markdown, figures: Mapping[str, Path]) -> None:
        super().__init__(md)
        self.figures = figures

    def run(self, root: etree.Element) -> None:
        for element in root.iter():
            for name in [n for n in element.attrib if n.lower().startswith("on")]:
                del element.attrib[name]
            if element.tag == "img":
                path = self.figures.get(element.get("src", ""))
                if path is not None and path.exists():
                    element.set("src", "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode())
                else:  # not one of the report's own figures: keep its alt text only
                    element.attrib.pop("src", None)
            elif element.tag == "a" and not SAFE_HREF.match(element.get("href", "")):
                element.attrib.pop("href", None)


class _InertExtension(markdown_lib.Extension):
    def __init__(self, figures: Mapping[str, Path]) -> None:
        super().__init__()
        self.figures = figures

    def extendMarkdown(self, md: markdown_lib.Markdown) -> None:  # noqa: N802 - Python-Markdown's name
        md.preprocessors.deregister("html_block")
        for name in ("html", "autolink", "automail"):
            md.inlinePatterns.deregister(name)
        md.treeprocessors.register(_InertTree(md, self.figures), "inert", 0)


def markdown_to_html(text: str, figures: Mapping[str, Path] | None = None) -> str:
    """Markdown (tables, fenced code) to an HTML fragment with raw HTML shown as text; ``figures`` maps
    the image names the Markdown uses to files, which are embedded as data URIs."""
    return markdown_lib.markdown(text, extensions=["tables", "fenced_code", _InertExtension(figures or {})])


def script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script (its text between the tags)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def content_security_policy(*scripts: str) -> str:
    """Nothing from the network, images from data URIs, inline styles, and only these scripts (by hash)."""
    script_src = " ".join(script_hash(s) for s in scripts) if scripts else "'none'"
    return (
        f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {script_src}; "
        "base-uri 'none'; form-action 'none'"
    )


ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

PAGE = ENVIRONMENT.from_string(
    '<!doctype html><html><head><meta charset="utf-8">'
    '<meta http-equiv="Content-Security-Policy" content="{{ csp }}">'
    "<title>{{ title }}</title><style>{{ style }}</style></head><body>{{ body }}</body></html>"
)


def html_page(title: str, body_html: str, style: str) -> str:
    """A self-contained page around an already inert ``body_html`` fragment; ``title`` is escaped here."""
    if "</style" in style.lower():
        raise ValueError("a page style must not close its <style> element")
    values: dict[str, Any] = {
        "csp": content_security_policy(),
        "title": title,
        "style": Markup(style),
        "body": Markup(body_html),
    }
    return PAGE.render(**values)
