"""The review packet: one self-contained HTML page, a CSV template with the same rows, and what the
verdicts are later checked against (packet.json) and relabelled from (samples.parquet).

The page must open from a mail attachment or a USB stick on a kitchen laptop: no server, no internet,
images embedded as data URIs, and the verdicts leave it as a CSV download built in the browser.

It shows ids and reasons that came from data, so it is a Jinja2 template with autoescape, its data
blocks are escaped JSON, its one script runs by hash under a Content-Security-Policy that loads nothing
from anywhere, and the CSV cells it writes (template and export) are formula-neutralised
(:mod:`doughflow.review.csv_cells`).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from markupsafe import Markup
from PIL import Image

from doughflow.reporting.inert import ENVIRONMENT, content_security_policy
from doughflow.review.csv_cells import JS_NEEDS_QUOTE, neutralise
from doughflow.review.sampling import Selected

PACKET = "packet.json"
TEMPLATE = "verdicts_template.csv"
PAGE = "review.html"
SAMPLES = "samples.parquet"
VERDICTS = ("correct", "wrong")


def csv_columns(labels: list[str]) -> list[str]:
    """The one CSV layout shared by the template, the page's export and the importer."""
    return [
        "sample_id",
        "reasons",
        *[f"predicted_{label}" for label in labels],
        "verdict",
        *[f"corrected_{label}" for label in labels],
        "comment",
    ]


@dataclass
class PacketResult:
    review_dir: str
    page: str
    template: str
    rows: int


def png_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def packet_rows(
    ids: list[str], pred: np.ndarray, true: np.ndarray, selected: list[Selected], labels: list[str]
) -> list[dict]:
    rows = []
    for item in selected:
        i = item.index
        rows.append(
            {
                "sample_id": ids[i],
                "reasons": item.reasons,
                "predicted": {label: round(float(pred[i, k]), 3) for k, label in enumerate(labels)},
                "predicted_rounded": {label: int(max(0, round(float(pred[i, k])))) for k, label in enumerate(labels)},
                "true": {label: int(round(float(true[i, k]))) for k, label in enumerate(labels)},
            }
        )
    return rows


def template_csv(rows: list[dict], labels: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_columns(labels))
    for row in rows:
        writer.writerow(
            [
                neutralise(cell)
                for cell in [
                    row["sample_id"],
                    "; ".join(row["reasons"]),
                    *[row["predicted_rounded"][label] for label in labels],
                    "",
                    *[""] * len(labels),
                    "",
                ]
            ]
        )
    return out.getvalue()


SCRIPT = r"""
const COLUMNS = JSON.parse(document.getElementById('columns').textContent);
const LABELS = JSON.parse(document.getElementById('labels').textContent);
const NEEDS_QUOTE = JS_NEEDS_QUOTE;
function cell(v) {
  v = v == null ? '' : String(v);
  if (NEEDS_QUOTE.test(v)) v = "'" + v;  // a spreadsheet reads it as text, never as a formula
  return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
}
function verdictsCsv() {
  const lines = [COLUMNS.map(cell).join(',')];
  document.querySelectorAll('tr.sample').forEach(tr => {
    const picked = tr.querySelector('input[type=radio]:checked');
    const row = [tr.dataset.id, tr.dataset.reasons];
    LABELS.forEach(l => row.push(tr.getAttribute('data-pred-' + l)));
    row.push(picked ? picked.value : '');
    LABELS.forEach(l => row.push(tr.querySelector('input.corrected[data-label="' + l + '"]').value.trim()));
    row.push(tr.querySelector('textarea.comment').value);
    lines.push(row.map(cell).join(','));
  });
  return lines.join('\n') + '\n';
}
function updateProgress() {
  const done = document.querySelectorAll('tr.sample input[type=radio]:checked').length;
  document.getElementById('progress').textContent = done + ' of ' + document.querySelectorAll('tr.sample').length + ' judged';
}
document.addEventListener('change', updateProgress);
document.getElementById('export').addEventListener('click', () => {
  const reviewer = document.getElementById('reviewer').value.trim().replace(/[^A-Za-z0-9_.-]+/g, '_');
  const run = document.body.dataset.run.replace(/[^A-Za-z0-9_.-]+/g, '_');
  const blob = new Blob([verdictsCsv()], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'verdicts-' + run + (reviewer ? '-' + reviewer : '') + '.csv';
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
updateProgress();
""".replace("JS_NEEDS_QUOTE", JS_NEEDS_QUOTE)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: .4em .6em; vertical-align: top; }
img { image-rendering: pixelated; } .reasons { color: #666; font-size: .85em; max-width: 16em; }
input.corrected { width: 3.5em; } textarea { width: 14em; height: 3em; }
.bar { position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 2px solid #c33; }
"""

# Autoescaped: every id, reason and label lands in the page as text. Data blocks go through |tojson,
# which escapes <, > and & so "</script>" or "<!--" in a value cannot end the block. The one script is
# allowed by its hash in the CSP; there are no inline event handlers.
PAGE_TEMPLATE = ENVIRONMENT.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<title>Review {{ run_id }}</title><style>{{ style }}</style></head>
<body data-run="{{ run_id }}">
<h1>Review of run <code>{{ run_id }}</code></h1>
<p>For each pizza: is the model's count of every topping right? Mark <b>correct</b> or <b>wrong</b>; when wrong,
enter the true count of each topping the model got wrong (leave the others empty) and add a comment if useful.
Then export and send the CSV back: <code>python -m flows.review {{ run_id }} verdicts.csv --reviewer NAME</code>.
Nothing leaves this page unless you export it.</p>
<div class="bar">Reviewer <input id="reviewer" placeholder="your name"> <button id="export">Export verdicts (CSV)</button>
<span id="progress"></span></div>
<table><thead><tr><th>pizza</th>
{%- for label in labels %}<th>{{ label }}<br><small>predicted / corrected</small></th>{% endfor -%}
<th>verdict</th><th>comment</th></tr></thead>
<tbody>
{%- for row in rows %}
<tr class="sample" data-id="{{ row.sample_id }}" data-reasons="{{ row.reasons }}"
{%- for label in labels %} data-pred-{{ label }}="{{ row.predicted_rounded[label] }}"{% endfor %}>
<td><img src="{{ row.image }}" width="{{ row.size }}" height="{{ row.size }}" alt="{{ row.sample_id }}"><br>
<code>{{ row.sample_id }}</code><div class="reasons">{{ row.reasons }}</div></td>
{%- for label in labels %}
<td><b title="model output {{ row.predicted[label] }}">{{ row.predicted_rounded[label] }}</b> /
<input class="corrected" type="number" min="0" max="{{ max_count }}" step="1" data-label="{{ label }}"
aria-label="corrected {{ label }} for {{ row.sample_id }}"></td>
{%- endfor %}
<td><label><input type="radio" name="v-{{ row.sample_id }}" value="correct"> correct</label><br>
<label><input type="radio" name="v-{{ row.sample_id }}" value="wrong"> wrong</label></td>
<td><textarea class="comment" aria-label="comment for {{ row.sample_id }}"></textarea></td></tr>
{%- endfor %}
</tbody></table>
<script type="application/json" id="columns">{{ columns|tojson }}</script>
<script type="application/json" id="labels">{{ labels|tojson }}</script>
<script>{{ script }}</script></body></html>
""")


def render_page(
    rows: list[dict], images: list[np.ndarray], labels: list[str], *, run_id: str, scale: int, max_count: int
) -> str:
    """review.html; ``labels`` are plain identifiers (the config checks them), used in attribute names."""
    bad = [label for label in labels if not label.isidentifier()]
    if bad:
        raise ValueError(f"labels {bad} must be plain identifiers to name the page's data-pred-* attributes")
    shown = [
        {**row, "reasons": "; ".join(row["reasons"]), "image": png_data_uri(pixels), "size": pixels.shape[0] * scale}
        for row, pixels in zip(rows, images)
    ]
    return PAGE_TEMPLATE.render(
        csp=content_security_policy(SCRIPT),
        style=Markup(STYLE),
        script=Markup(SCRIPT),
        run_id=run_id,
        labels=labels,
        rows=shown,
        max_count=max_count,
        columns=csv_columns(labels),
    )


def write_packet(
    review_dir: Path,
    *,
    run_id: str,
    labels: list[str],
    ids: list[str],
    images: np.ndarray,
    pred: np.ndarray,
    true: np.ndarray,
    selected: list[Selected],
    originals: pa.Table,
    scale: int,
    max_count: int,
    strategy: dict,
) -> PacketResult:
    """``originals`` holds the selected rows as in the source (id, image bytes, group, labels), kept
    in samples.parquet so corrected counts can become training data without the run's shards."""
    review_dir.mkdir(parents=True, exist_ok=True)
    rows = packet_rows(ids, pred, true, selected, labels)
    page = review_dir / PAGE
    page.write_text(
        render_page(rows, [images[s.index] for s in selected], labels, run_id=run_id, scale=scale, max_count=max_count)
    )
    template = review_dir / TEMPLATE
    template.write_text(template_csv(rows, labels))
    (review_dir / PACKET).write_text(
        json.dumps(
            {"run_id": run_id, "labels": labels, "max_count": max_count, "strategy": strategy, "rows": rows}, indent=2
        )
    )
    pq.write_table(originals, review_dir / SAMPLES)
    return PacketResult(str(review_dir), str(page), str(template), len(rows))


def load_packet(review_dir: Path) -> dict:
    path = Path(review_dir) / PACKET
    if not path.exists():
        raise FileNotFoundError(f"{path}: no review packet (was the run made with review.enabled?)")
    return json.loads(path.read_text())
