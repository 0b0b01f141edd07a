"""A self-contained HTML page: the SVG diagram beside the table, each layer's numbers shown on hover
or click (and for ``#layer=NAME`` in the address, so a link can point at a layer). Nothing is fetched:
the SVG, styles, script and figures are all inline, so it works offline, from a file."""
from __future__ import annotations

import json
from html import escape

from ..graph.receptive import as_number
from ..graph.report import COLUMNS, Totals
from .diagram import Diagram
from .layout import Layout
from .svg import to_svg

# the output shape right after the op, and the inputs (a concat's can be long) wrapped in a narrow column:
# at 1400x1000 the shape stays in view beside the diagram (tests/test_draw.py measures it in a browser)
SHOWN = ("name", "op", "shape", "inputs", "rf", "stride", "params", "params%", "macs", "macs%", "flops")
WRAPPED = ("inputs",)

STYLE = """
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: #222; display: flex; height: 100vh; }
#diagram { flex: 1 1 55%; overflow: auto; border-right: 1px solid #ccc; }
#side { flex: 1 1 45%; display: flex; flex-direction: column; min-width: 0; }
#info { padding: 10px 14px; border-bottom: 1px solid #ccc; background: #f7f7f7; min-height: 9em; }
#info h2 { margin: 0 0 6px; font-size: 15px; font-family: monospace; }
#info dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 0; }
#info dt { color: #666; } #info dd { margin: 0; font-family: monospace; }
#table { overflow: auto; flex: 1; }
table { border-collapse: collapse; font-family: monospace; font-size: 12px; }
th, td { padding: 2px 8px; border-bottom: 1px solid #eee; white-space: nowrap; }
th { position: sticky; top: 0; background: #fff; text-align: left; }
td.num { text-align: right; }
td.wrap { white-space: normal; min-width: 10em; max-width: 16em; overflow-wrap: anywhere; }
tr.selected td { background: #fff3b0; }
g.layer { cursor: pointer; }
g.layer.selected rect { stroke: #d00; stroke-width: 3; }
g.layer:hover rect { stroke-width: 2; }
"""

SCRIPT = """
const figures = JSON.parse(document.getElementById('figures').textContent);
const info = document.getElementById('info');
let pinned = null;
function layerBox(name) { return document.querySelector('g.layer[data-name="' + CSS.escape(name) + '"]'); }
function layerRow(name) { return document.querySelector('tr[data-name="' + CSS.escape(name) + '"]'); }
function show(name) {
  const f = figures[name];
  if (!f) return;
  info.replaceChildren();
  const h = document.createElement('h2'); h.textContent = name; info.appendChild(h);
  const dl = document.createElement('dl');
  for (const [label, value] of f) {
    const dt = document.createElement('dt'); dt.textContent = label;
    const dd = document.createElement('dd'); dd.textContent = value;
    dl.append(dt, dd);
  }
  info.appendChild(dl);
  info.dataset.layer = name;
}
function pin(name, scrollBox, scrollRow) {
  document.querySelectorAll('.selected').forEach(e => e.classList.remove('selected'));
  pinned = name; show(name);
  const box = layerBox(name), row = layerRow(name);
  if (box) { box.classList.add('selected'); if (scrollBox) box.scrollIntoView({block: 'center'}); }
  if (row) { row.classList.add('selected'); if (scrollRow) row.scrollIntoView({block: 'center'}); }
}
document.querySelectorAll('g.layer').forEach(g => {
  g.addEventListener('mouseover', () => show(g.dataset.name));
  g.addEventListener('mouseout', () => { if (pinned) show(pinned); });
  g.addEventListener('click', () => pin(g.dataset.name, false, true));
});
document.querySelectorAll('tr[data-name]').forEach(tr => {
  tr.addEventListener('mouseover', () => show(tr.dataset.name));
  tr.addEventListener('click', () => pin(tr.dataset.name, true, false));
});
function fromAddress() {
  const m = location.hash.match(/^#layer=(.+)$/);
  const box = m && layerBox(decodeURIComponent(m[1]));
  if (box) { box.dispatchEvent(new MouseEvent('click', {bubbles: true})); box.scrollIntoView({block: 'center'}); }
}
window.addEventListener('hashchange', fromAddress);
fromAddress();
"""


def _figures(d: Diagram) -> dict:
    """Layer -> [(label, text), ...], what the panel lists."""
    totals = Totals(*_totals(d))
    out = {}
    for b in d.boxes:
        r = b.row
        items = [("op", b.detail or "input"), ("inputs", ", ".join(r.inputs) or "-"), ("output shape", b.shape)]
        if r.field is not None:
            items += [("receptive field", " x ".join(str(v) for v in r.field.size)),
                      ("effective stride", " x ".join(str(as_number(v)) for v in r.field.stride))]
        if b.id != "input":
            items += [("params", f"{r.params:,} ({COLUMNS['params%'].cell(r, totals) or '0%'})"),
                      ("MACs", f"{r.macs:,} ({COLUMNS['macs%'].cell(r, totals) or '0%'})"),
                      ("FLOPs (2 x MACs)", f"{r.flops:,}")]
        if r.layers:
            items.append(("layers", ", ".join(r.layers)))
        out[b.id] = items
    return out


def _totals(d: Diagram) -> tuple[int, int]:
    return sum(b.row.params for b in d.boxes), sum(b.row.macs for b in d.boxes)


def _cell_class(key: str) -> str:
    return " class=num" if COLUMNS[key].right else " class=wrap" if key in WRAPPED else ""


def _cell_text(key: str, row, totals) -> str:
    """The terminal table's cell, but a wrapped column's in full ("a, b, c": the browser wraps it)."""
    return ", ".join(row.inputs) if key == "inputs" else COLUMNS[key].cell(row, totals)


def _table(d: Diagram) -> str:
    totals = Totals(*_totals(d))
    head = "".join(f"<th>{escape(COLUMNS[k].header)}</th>" for k in SHOWN)
    rows = []
    for b in d.boxes:
        cells = "".join(f'<td{_cell_class(k)}>{escape(_cell_text(k, b.row, totals))}</td>' for k in SHOWN)
        rows.append(f'<tr data-name="{escape(b.id)}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def to_html(d: Diagram, layout: Layout, title: str) -> str:
    params, macs = _totals(d)
    data = json.dumps(_figures(d), ensure_ascii=False).replace("</", "<\\/")
    summary = (f"{len(d.boxes) - 1} {'rows' if any(b.row.layers for b in d.boxes) else 'layers'}, "
               f"{params:,} params, {macs:,} MACs ({2 * macs:,} FLOPs) per sample")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        f'<div id="diagram">{to_svg(layout)}</div>',
        '<div id="side">',
        f'<div id="info"><h2>{escape(d.name)}</h2><p>{escape(summary)}</p>'
        "<p>Hover over a layer, or click it to keep its numbers here.</p></div>",
        f'<div id="table">{_table(d)}</div>', "</div>",
        f'<script type="application/json" id="figures">{data}</script>',
        f"<script>{SCRIPT}</script>", "</body>", "</html>", ""])
