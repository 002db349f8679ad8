"""Data in reports stays text: Markdown escaping, rendering with raw HTML off, CSP, and a real browser."""

import html
import re
from html.parser import HTMLParser

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.reporting.inert import content_security_policy, markdown_to_html, md_code, md_text, script_hash
from doughflow.reporting.plots import caption_text, example_grid
from doughflow.reporting.report import render_html, table, write_report
from tests.support.browser import browser_page
from tests.support.hostile import ALL_TEXT_PAYLOADS, PWNED, SCRIPT_PAYLOADS

TABLE_TAGS = {"p", "table", "thead", "tbody", "tr", "th", "td", "code"}


class _Text(HTMLParser):
    """Tags, attributes and text content of an HTML fragment."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data):
        self.text.append(data)


def parsed(fragment: str) -> _Text:
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return parser


def squeeze(text: str) -> str:
    """As a browser shows it: control characters (md_text's U+FFFD) aside, whitespace runs as one space."""
    return " ".join(re.sub(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]", "", text).split())


markdownish = st.text(alphabet=st.sampled_from(list("<>&\"'`*_[]()!|#-+.\\:/= \tab1\n{}$~@")), max_size=40)


@settings(max_examples=400, deadline=None)
@given(st.one_of(markdownish, st.text(max_size=40), st.sampled_from(ALL_TEXT_PAYLOADS)))
def test_md_text_renders_to_exactly_its_characters(value):
    """In a table cell and in a paragraph: only the markup we wrote, and the text reads back as the value
    (line breaks as spaces, runs of whitespace as one, as HTML shows them)."""
    for fragment in (markdown_to_html(table(["h"], [[value]])), markdown_to_html("x " + md_text(value) + " y")):
        page = parsed(fragment)
        assert set(page.tags) <= TABLE_TAGS, (value, fragment)
        assert not page.attributes, (value, fragment)
    cell = parsed(markdown_to_html(table(["h"], [[value]])))
    assert squeeze("".join(cell.text)) == squeeze("h " + " ".join(value.splitlines())), value


@settings(max_examples=200, deadline=None)
@given(st.one_of(markdownish, st.sampled_from(ALL_TEXT_PAYLOADS)))
def test_md_code_is_one_code_span(value):
    if not value.strip():
        return
    page = parsed(markdown_to_html("path " + md_code(value)))
    assert page.tags == ["p", "code"] and not page.attributes
    assert squeeze("".join(page.text)) == squeeze("path " + " ".join(value.splitlines())), value


def test_raw_html_links_and_remote_images_in_our_own_markdown_are_inert(tmp_path):
    (tmp_path / "loss_curve.png").write_bytes(b"\x89PNG fake")
    text = (
        "<script>alert(1)</script>\n\n<div onclick=alert(1)>x</div>\n\n[a](javascript:alert(1)) "
        "[b](https://example.org) ![own](loss_curve.png) ![remote](http://127.0.0.1:9/x.png) <http://x.org>"
    )
    page = render_html(text, tmp_path, "run <b>x</b>")
    body = page.split("<body>", 1)[1]
    assert "<script" not in body and "<div" not in body and "onclick" not in body.replace("onclick=alert", "")
    assert 'href="https://example.org"' in body and "javascript:" not in body.split("[a]")[0]
    assert body.count("<img") == 2 and body.count('src="data:image/png;base64,') == 1 and "127.0.0.1" not in body
    assert "<title>run &lt;b&gt;x&lt;/b&gt;</title>" in page
    csp = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1))
    assert csp == content_security_policy() and "script-src 'none'" in csp and "default-src 'none'" in csp


def test_script_hash_is_the_csp_source_of_that_script():
    assert script_hash("alert(1)") == "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
    assert script_hash("alert(1)") in content_security_policy("alert(1)")


def test_captions_are_plain_text_and_bounded(tmp_path):
    """A "$...$" in an id is not mathtext (a malformed one made savefig raise), controls are replaced."""
    assert caption_text("a\x00b\u202ec") == "a\ufffdb\ufffdc"
    assert len(caption_text("x" * 5000)) == 40
    image = np.zeros((16, 16, 3), np.uint8)
    example_grid([image] * len(ALL_TEXT_PAYLOADS), ALL_TEXT_PAYLOADS, tmp_path / "grid.png", columns=4)
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_report_page_runs_nothing_in_a_browser(tmp_path):
    """Every payload in a table and a paragraph of a report page; then the same page with its CSP removed,
    so escaping alone is shown to hold, not only the policy."""
    text = (
        "# report\n\n"
        + table(["id", "note"], [[p, p] for p in SCRIPT_PAYLOADS])
        + "\n\n"
        + "\n\n".join(f"Sample {md_text(p)} and {md_code(p)}." for p in SCRIPT_PAYLOADS)
    )
    files = write_report(tmp_path, text, "hostile <script>window.__pwned=9</script>", [])
    page_text = open(files.html).read()
    without_csp = tmp_path / "no_csp.html"
    without_csp.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page_text))
    with browser_page(tmp_path) as (page, requests, errors):
        for path in (files.html, without_csp):
            page.goto(f"file://{path}")
            page.wait_for_timeout(200)
            assert page.evaluate(PWNED) is None, path
            assert all(url.startswith(("file:", "data:")) for url in requests), requests
            cells = page.eval_on_selector_all("tbody tr td:first-child", "tds => tds.map(td => td.textContent)")
            assert cells == SCRIPT_PAYLOADS
            assert page.title() == "hostile <script>window.__pwned=9</script>"
