"""The run report, written once as Markdown and rendered to a self-contained HTML page.

Markdown is the source so the same text becomes a Prefect artifact; the HTML embeds its figures as
data URIs so the file can be mailed or opened from the bundle without its neighbours. Every value from
data goes through :func:`doughflow.reporting.inert.md_text` (``table`` does it for every cell), and the
page is rendered with raw HTML off and a strict Content-Security-Policy (see that module).
"""

from __future__ import annotations

import base64
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

from doughflow.reporting.inert import html_page, markdown_to_html, md_text
from doughflow.reporting.numbers import human


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table: numbers written for people (:func:`doughflow.reporting.numbers.human`), every other
    cell escaped (``Md`` cells, e.g. code spans, pass as they are)."""

    def cell(value: object) -> str:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return human(value)
        return md_text(value, line_start=False)

    lines = [
        "| " + " | ".join(md_text(h, line_start=False) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class ReportFiles:
    markdown: str
    html: str
    figures: list[str]


def metrics_section(metrics: dict, labels: list[str]) -> str:
    rows = [
        [
            split,
            m.get("n", 0),
            m.get("mae", float("nan")),
            m.get("exact_count_accuracy", float("nan")),
            m.get("image_exact_accuracy", float("nan")),
        ]
        for split, m in metrics.items()
    ]
    text = table(["split", "images", "MAE", "exact-count accuracy", "image exact accuracy"], rows)
    test = metrics.get("test", {}).get("per_topping", {})
    if test:
        text += "\n\nPer topping on the test split:\n\n"
        text += table(
            ["topping", "MAE", "exact-count accuracy"],
            [[label, test[label]["mae"], test[label]["exact_count_accuracy"]] for label in labels],
        )
    return text


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "th{background:#f4f0e8}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    "code{background:#f6f6f6;padding:1px 4px}"
)


def _figure_uri(base_dir: Path, name: str) -> str | None:
    """``name`` (a PNG beside the report, never a path out of its folder) as a data URI, or None."""
    folder = base_dir.resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


MARKDOWN_FIGURE = re.compile(r"(!\[[^\]]*\]\()([^)\s]+\.png)(\))")


def inline_figures(markdown_text: str, base_dir: Path) -> str:
    """The Markdown with every ``![alt](figure.png)`` of ``base_dir`` as a data URI, for viewers that
    do not have the report's folder: the Prefect UI renders such images in a markdown artifact
    (checked in headless chromium against a real server), and they stay with the text."""

    def inline(match: re.Match) -> str:
        uri = _figure_uri(base_dir, match.group(2))
        return match.group(0) if uri is None else f"{match.group(1)}{uri}{match.group(3)}"

    return MARKDOWN_FIGURE.sub(inline, markdown_text)


def render_html(markdown_text: str, base_dir: Path, title: str) -> str:
    """The page: the report's own figures (PNG files in ``base_dir``) inlined, raw HTML shown as text."""
    figures = {path.name: path for path in Path(base_dir).glob("*.png")}
    return html_page(title, markdown_to_html(markdown_text, figures), STYLE)


def write_report(out_dir: Path, markdown_text: str, title: str, figures: list[str]) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "report.md"
    html_path = out_dir / "report.html"
    md_path.write_text(markdown_text)
    html_path.write_text(render_html(markdown_text, out_dir, title))
    return ReportFiles(str(md_path), str(html_path), figures)
