"""Placing a :class:`Diagram`: grandalf's Sugiyama layout (layers, crossing reduction, Brandes-Koepf
coordinates; pure Python, so ``pip install 'cnnspec[draw]'`` is all a machine needs, no Graphviz).

Boxes are sized from their text in a monospace font; clusters are drawn around their members' boxes.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .diagram import Box, Diagram

FONT = 11          # px
CHAR = 0.62 * FONT  # px per character of a monospace font (0.6 em, and a little room)
LINE = 15          # px per line of text
PAD_X, PAD_Y = 12, 7
GAP_X, GAP_Y = 28, 42
CLUSTER_PAD, CLUSTER_LABEL = 8, 16
MARGIN = 20


@dataclass(frozen=True)
class Placed:
    box: Box
    x: float  # left
    y: float  # top
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2


@dataclass(frozen=True)
class Route:
    src: str
    dst: str
    style: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Frame:
    id: str
    label: str
    x: float
    y: float
    w: float
    h: float
    depth: int


@dataclass(frozen=True)
class Layout:
    name: str
    width: float
    height: float
    boxes: tuple[Placed, ...]
    routes: tuple[Route, ...]
    frames: tuple[Frame, ...]


def box_size(box: Box) -> tuple[float, float]:
    return (max(len(t) for t in box.lines) * CHAR + 2 * PAD_X, len(box.lines) * LINE + 2 * PAD_Y)


def _grandalf():
    try:
        from grandalf.graphs import Edge, Graph, Vertex
        from grandalf.layouts import SugiyamaLayout
    except ImportError:
        raise UsageError("drawing .svg, .png and .html needs grandalf: pip install 'cnnspec[draw]' "
                         "(.dot needs nothing)") from None
    return Vertex, Edge, Graph, SugiyamaLayout


class _View:
    def __init__(self, w, h):
        self.w, self.h, self.xy = w, h, (0.0, 0.0)


class _Path:
    def __init__(self):
        self.points = []

    def setpath(self, points):
        self.points = list(points)


def place(d: Diagram) -> Layout:
    Vertex, Edge, Graph, SugiyamaLayout = _grandalf()
    vertices = {}
    for b in d.boxes:
        v = Vertex(b.id)
        v.view = _View(*box_size(b))
        vertices[b.id] = v
    edges = []
    for a in d.arrows:
        e = Edge(vertices[a.src], vertices[a.dst])
        e.view = _Path()
        edges.append((a, e))
    graph = Graph(list(vertices.values()), [e for _, e in edges])
    left = 0.0
    for component in graph.C:  # side by side (a spec's graph is one piece: everything reads the input)
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = GAP_X, GAP_Y
        roots = [v for v in component.sV if not v.e_in()]
        sugiyama.init_all(roots=sorted(roots, key=lambda v: v.data), inverted_edges=[])
        sugiyama.draw()
        xs = [v.view.xy[0] - v.view.w / 2 for v in component.sV]
        shift = left - min(xs)
        for v in component.sV:
            v.view.xy = (v.view.xy[0] + shift, v.view.xy[1])
        for _, e in edges:
            if e.v[0] in component.sV:
                e.view.points = [(x + shift, y) for x, y in e.view.points]
        left = max(v.view.xy[0] + v.view.w / 2 for v in component.sV) + GAP_X
    return _assemble(d, vertices, edges)


def _assemble(d: Diagram, vertices, edges) -> Layout:
    placed = {b.id: Placed(b, vertices[b.id].view.xy[0] - vertices[b.id].view.w / 2,
                           vertices[b.id].view.xy[1] - vertices[b.id].view.h / 2,
                           vertices[b.id].view.w, vertices[b.id].view.h) for b in d.boxes}
    frames = _frames(d, placed)
    xs = [p.x for p in placed.values()] + [f.x for f in frames]
    ys = [p.y for p in placed.values()] + [f.y for f in frames]
    dx, dy = MARGIN - min(xs), MARGIN - min(ys)
    moved = {k: Placed(p.box, p.x + dx, p.y + dy, p.w, p.h) for k, p in placed.items()}
    frames = tuple(Frame(f.id, f.label, f.x + dx, f.y + dy, f.w, f.h, f.depth) for f in frames)
    routes = []
    for a, e in edges:
        src, dst = moved[a.src], moved[a.dst]
        middle = [(x + dx, y + dy) for x, y in e.view.points[1:-1]]
        routes.append(Route(a.src, a.dst, a.style, ((src.cx, src.y + src.h), *middle, (dst.cx, dst.y))))
    width = max([p.x + p.w for p in moved.values()] + [f.x + f.w for f in frames]) + MARGIN
    height = max([p.y + p.h for p in moved.values()] + [f.y + f.h for f in frames]) + MARGIN
    return Layout(d.name, width, height, tuple(moved[b.id] for b in d.boxes), tuple(routes), frames)


def _frames(d: Diagram, placed) -> tuple[Frame, ...]:
    """A rectangle around each cluster's boxes and inner clusters, innermost first (drawn outermost first)."""
    parent = {c.id: c.parent for c in d.clusters}
    depth = {}
    for c in d.clusters:
        k, p = 0, c.parent
        while p is not None:
            k, p = k + 1, parent.get(p)
        depth[c.id] = k
    extent: dict[str, list] = {}
    for b in d.boxes:
        if b.cluster is not None:
            p = placed[b.id]
            extent.setdefault(b.cluster, []).append((p.x, p.y, p.x + p.w, p.y + p.h))
    frames = []
    for c in sorted(d.clusters, key=lambda c: -depth[c.id]):
        rects = extent.get(c.id)
        if not rects:
            continue
        x0, y0 = min(r[0] for r in rects) - CLUSTER_PAD, min(r[1] for r in rects) - CLUSTER_PAD - CLUSTER_LABEL
        x1, y1 = max(r[2] for r in rects) + CLUSTER_PAD, max(r[3] for r in rects) + CLUSTER_PAD
        frames.append(Frame(c.id, c.label, x0, y0, x1 - x0, y1 - y0, depth[c.id]))
        if c.parent is not None:
            extent.setdefault(c.parent, []).append((x0, y0, x1, y1))
    return tuple(sorted(frames, key=lambda f: f.depth))
