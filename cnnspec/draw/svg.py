"""SVG text from a :class:`Layout`, written by hand (no renderer needed). Each layer is a ``<g
class="layer" data-name=...>`` with a ``<title>`` (a tooltip in any viewer), so the HTML page can
find it and every layer name appears in the file."""
from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from .layout import FONT, LINE, PAD_Y, Layout
from .style import ARROW_STYLES, CLUSTER_FILL, CLUSTER_STROKE, fill

FONTS = "DejaVu Sans Mono, Menlo, Consolas, monospace"

def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")

def _tooltip(box) -> str:
    from ..graph.report import COLUMNS, Totals

    row = box.row
    cells = [f"{COLUMNS[k].header}: {COLUMNS[k].cell(row, Totals(0, 0))}" for k in ("rf", "stride", "params", "macs")]
    return "\n".join([*box.lines, *cells])

def to_svg(layout: Layout) -> str:
    w, h = _num(layout.width), _num(layout.height)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'font-family={quoteattr(FONTS)} font-size="{FONT}">',
           f"<title>{escape(layout.name)}</title>",
           "<defs>"]
    for key, line in ARROW_STYLES.items():
        out.append(f'<marker id="arrow-{key}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{line.colour}"/></marker>')
    out.append("</defs>")
    out.append(f'<rect width="100%" height="100%" fill="#ffffff"/>')
    for f in layout.frames:
        out.append(f'<g class="cluster" data-name={quoteattr(f.id)}>'
                   f'<rect x="{_num(f.x)}" y="{_num(f.y)}" width="{_num(f.w)}" height="{_num(f.h)}" rx="6" '
                   f'fill="{CLUSTER_FILL}" stroke="{CLUSTER_STROKE}" stroke-dasharray="4 3"/>'
                   f'<text x="{_num(f.x + 6)}" y="{_num(f.y + 12)}" fill="#555555" font-style="italic">'
                   f"{escape(f.label)}</text></g>")
    for r in layout.routes:
        line = ARROW_STYLES[r.style]
        points = " ".join(f"{_num(x)},{_num(y)}" for x, y in r.points)
        dash = ' stroke-dasharray="5 3"' if line.dashed else ""
        out.append(f'<polyline class="edge {r.style}" data-from={quoteattr(r.src)} data-to={quoteattr(r.dst)} '
                   f'points="{points}" fill="none" stroke="{line.colour}" stroke-width="1.3"{dash} '
                   f'marker-end="url(#arrow-{r.style})"/>')
    for p in layout.boxes:
        b = p.box
        out.append(f'<g class="layer" data-name={quoteattr(b.id)}><title>{escape(_tooltip(b))}</title>'
                   f'<rect x="{_num(p.x)}" y="{_num(p.y)}" width="{_num(p.w)}" height="{_num(p.h)}" rx="5" '
                   f'fill="{fill(b.kind)}" stroke="#444444"/>')
        for i, text in enumerate(b.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            y = p.y + PAD_Y + LINE * i + LINE * 0.75
            out.append(f'<text x="{_num(p.cx)}" y="{_num(y)}" text-anchor="middle"{weight}>{escape(text)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
