"""The review packet: one self-contained HTML page, a CSV template with the same rows, and what the
verdicts are later checked against (packet.json) and relabelled from (samples.parquet).

The page must open from a mail attachment or a USB stick on a kitchen laptop: no server, no internet,
images embedded as data URIs, and the verdicts leave it as a CSV download built in the browser.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from doughflow.review.sampling import Selected

PACKET = "packet.json"
TEMPLATE = "verdicts_template.csv"
PAGE = "review.html"
SAMPLES = "samples.parquet"
VERDICTS = ("correct", "wrong")


def csv_columns(labels: list[str]) -> list[str]:
    """The one CSV layout shared by the template, the page's export and the importer."""
    return ["sample_id", "reasons", *[f"predicted_{label}" for label in labels], "verdict",
            *[f"corrected_{label}" for label in labels], "comment"]


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


def packet_rows(ids: list[str], pred: np.ndarray, true: np.ndarray, selected: list[Selected],
                labels: list[str]) -> list[dict]:
    rows = []
    for item in selected:
        i = item.index
        rows.append({"sample_id": ids[i], "reasons": item.reasons,
                     "predicted": {label: round(float(pred[i, k]), 3) for k, label in enumerate(labels)},
                     "predicted_rounded": {label: int(max(0, round(float(pred[i, k])))) for k, label in enumerate(labels)},
                     "true": {label: int(round(float(true[i, k]))) for k, label in enumerate(labels)}})
    return rows


def template_csv(rows: list[dict], labels: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_columns(labels))
    for row in rows:
        writer.writerow([row["sample_id"], "; ".join(row["reasons"]),
                         *[row["predicted_rounded"][label] for label in labels], "", *[""] * len(labels), ""])
    return out.getvalue()


SCRIPT = r"""
const COLUMNS = JSON.parse(document.getElementById('columns').textContent);
const LABELS = JSON.parse(document.getElementById('labels').textContent);
function cell(v) { v = v == null ? '' : String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
function verdictsCsv() {
  const lines = [COLUMNS.join(',')];
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
  const blob = new Blob([verdictsCsv()], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'verdicts-' + document.body.dataset.run + (reviewer ? '-' + reviewer : '') + '.csv';
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
});
updateProgress();
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; } td, th { border-bottom: 1px solid #ddd; padding: .4em .6em; vertical-align: top; }
img { image-rendering: pixelated; } .reasons { color: #666; font-size: .85em; max-width: 16em; }
input.corrected { width: 3.5em; } textarea { width: 14em; height: 3em; }
.bar { position: sticky; top: 0; background: #fff; padding: .5em 0; border-bottom: 2px solid #c33; }
"""


def render_page(rows: list[dict], images: list[np.ndarray], labels: list[str], *, run_id: str, scale: int,
                max_count: int) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(label)}<br><small>predicted / corrected</small></th>" for label in labels)
    body = []
    for row, pixels in zip(rows, images):
        sid = esc(row["sample_id"], quote=True)
        data = " ".join(f'data-pred-{esc(label)}="{row["predicted_rounded"][label]}"' for label in labels)
        cells = "".join(
            f'<td><b title="model output {row["predicted"][label]}">{row["predicted_rounded"][label]}</b> / '
            f'<input class="corrected" type="number" min="0" max="{max_count}" step="1" data-label="{esc(label)}" '
            f'aria-label="corrected {esc(label)} for {sid}"></td>' for label in labels)
        size = pixels.shape[0] * scale
        body.append(
            f'<tr class="sample" data-id="{sid}" data-reasons="{esc("; ".join(row["reasons"]), quote=True)}" {data}>'
            f'<td><img src="{png_data_uri(pixels)}" width="{size}" height="{size}" alt="{sid}"><br><code>{sid}</code>'
            f'<div class="reasons">{esc("; ".join(row["reasons"]))}</div></td>{cells}'
            f'<td><label><input type="radio" name="v-{sid}" value="correct"> correct</label><br>'
            f'<label><input type="radio" name="v-{sid}" value="wrong"> wrong</label></td>'
            f'<td><textarea class="comment" aria-label="comment for {sid}"></textarea></td></tr>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Review {esc(run_id)}</title><style>{STYLE}</style></head>
<body data-run="{esc(run_id, quote=True)}">
<h1>Review of run <code>{esc(run_id)}</code></h1>
<p>For each pizza: is the model's count of every topping right? Mark <b>correct</b> or <b>wrong</b>; when wrong,
enter the true count of each topping the model got wrong (leave the others empty) and add a comment if useful.
Then export and send the CSV back: <code>python -m flows.review {esc(run_id)} verdicts.csv --reviewer NAME</code>.
Nothing leaves this page unless you export it.</p>
<div class="bar">Reviewer <input id="reviewer" placeholder="your name"> <button id="export">Export verdicts (CSV)</button>
<span id="progress"></span></div>
<table><thead><tr><th>pizza</th>{head}<th>verdict</th><th>comment</th></tr></thead>
<tbody>{''.join(body)}</tbody></table>
<script type="application/json" id="columns">{json.dumps(csv_columns(labels))}</script>
<script type="application/json" id="labels">{json.dumps(labels)}</script>
<script>{SCRIPT}</script></body></html>
"""


def write_packet(review_dir: Path, *, run_id: str, labels: list[str], ids: list[str], images: np.ndarray,
                 pred: np.ndarray, true: np.ndarray, selected: list[Selected], originals: pa.Table,
                 scale: int, max_count: int, strategy: dict) -> PacketResult:
    """``originals`` holds the selected rows as in the source (id, image bytes, group, labels), kept
    in samples.parquet so corrected counts can become training data without the run's shards."""
    review_dir.mkdir(parents=True, exist_ok=True)
    rows = packet_rows(ids, pred, true, selected, labels)
    page = review_dir / PAGE
    page.write_text(render_page(rows, [images[s.index] for s in selected], labels, run_id=run_id, scale=scale,
                                max_count=max_count))
    template = review_dir / TEMPLATE
    template.write_text(template_csv(rows, labels))
    (review_dir / PACKET).write_text(json.dumps({"run_id": run_id, "labels": labels, "max_count": max_count,
                                                 "strategy": strategy, "rows": rows}, indent=2))
    pq.write_table(originals, review_dir / SAMPLES)
    return PacketResult(str(review_dir), str(page), str(template), len(rows))


def load_packet(review_dir: Path) -> dict:
    path = Path(review_dir) / PACKET
    if not path.exists():
        raise FileNotFoundError(f"{path}: no review packet (was the run made with review.enabled?)")
    return json.loads(path.read_text())
