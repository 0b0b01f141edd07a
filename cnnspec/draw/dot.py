"""Graphviz DOT text from a :class:`Diagram`: plain text, no engine needed to write it (``dot -Tsvg``
renders it where Graphviz is installed). Block calls are ``cluster_`` subgraphs, nested as called."""
from __future__ import annotations

from .diagram import Diagram
from .style import ARROW_STYLES, CLUSTER_FILL, CLUSTER_STROKE, fill


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _box(box) -> str:
    return (f"{quote(box.id)} [label={quote(chr(10).join(box.lines))}, "
            f"fillcolor={quote(fill(box.kind))}];")


def to_dot(d: Diagram) -> str:
    children: dict[str | None, list] = {}
    for c in d.clusters:
        children.setdefault(c.parent, []).append(c)
    members: dict[str | None, list] = {}
    for b in d.boxes:
        members.setdefault(b.cluster, []).append(b)
    lines = [f"digraph {quote(d.name)} {{",
             '  graph [rankdir=TB, fontname="Helvetica", fontsize=10, nodesep=0.3, ranksep=0.35];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [arrowsize=0.7];']

    def emit(cluster_id, depth):
        pad = "  " * depth
        for b in members.get(cluster_id, ()):
            lines.append(pad + _box(b))
        for c in children.get(cluster_id, ()):
            lines.append(f"{pad}subgraph {quote('cluster_' + c.id)} {{")
            lines.append(f"{pad}  label={quote(c.label)}; labeljust=l; style=\"rounded,filled\"; "
                         f"color={quote(CLUSTER_STROKE)}; fillcolor={quote(CLUSTER_FILL)};")
            emit(c.id, depth + 1)
            lines.append(pad + "}")

    emit(None, 1)
    for a in d.arrows:
        line = ARROW_STYLES[a.style]
        attrs = f' [color={quote(line.colour)}{", style=dashed" if line.dashed else ""}]' if a.style != "flow" else ""
        lines.append(f"  {quote(a.src)} -> {quote(a.dst)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"
