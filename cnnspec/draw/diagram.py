"""A checked graph as boxes, arrows and clusters: what a drawing shows, before any layout.

Every layer is a box (its name, its op with the arguments that differ from the defaults, its output
shape); block calls are clusters, or with ``collapse`` one box each. Arrows into a join are styled so
that skip connections and concat branches stand out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph.figures import Row, call_name, call_rows, input_row, layer_rows
from ..graph.ir import INPUT, Graph, Node
from ..graph.ops import OPS, fmt_shape
from ..graph.receptive import receptive_fields


@dataclass(frozen=True)
class Box:
    id: str
    detail: str          # the op and its key arguments, or the block and its size
    shape: str
    kind: str            # the op (colours), "call" for a collapsed call, "input"
    cluster: str | None  # the call it is drawn in
    row: Row             # its figures, for the page's table and tooltips

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(text for text in (self.id, self.detail, self.shape) if text)


@dataclass(frozen=True)
class Arrow:
    src: str
    dst: str
    style: str  # a key of ARROW_STYLES


@dataclass(frozen=True)
class Cluster:
    id: str
    label: str
    parent: str | None = None


@dataclass(frozen=True)
class Diagram:
    name: str
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]
    clusters: tuple[Cluster, ...] = field(default=())


# how an arrow into a join is drawn when it does not come from the box just before
JOINS = {"add": "skip", "multiply": "skip", "concat": "branch"}


def _value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (tuple, list)):
        return str(v[0]) if len(set(v)) == 1 else "x".join(map(str, v)) if len(v) == 2 else ",".join(map(str, v))
    return str(v)


def op_detail(node: Node) -> str:
    """'conv2d 64, kernel 7, stride 2, padding 3, bias false +relu': the primary argument bare (where
    required or not its default), then every argument that differs from its default (a pool's stride
    where it is not the kernel)."""
    op = OPS.get(node.op)
    if op is None:
        return node.op
    parts, act = [], None
    for key, arg in op.args.items():
        value = node.attrs.get(key)
        if key == "activation":
            act = value
            continue
        default = node.attrs.get(arg.default_from) if arg.default_from else arg.default
        default = op.normalize({key: default}).get(key) if arg.default_from is None else default
        if key == op.primary and (arg.required or value != default):
            parts.insert(0, _value(value))
        elif key != op.primary and value != default and value is not None:
            parts.append(f"{key} {_value(value)}")
    text = node.op + (" " + ", ".join(parts) if parts else "")
    return text + (f" +{act}" if act else "")


def _clusters(graph: Graph) -> tuple[Cluster, ...]:
    """One per innermost call; a call nests in the longest other call whose name prefixes its own."""
    seen: dict[str, str] = {}
    for n in graph.nodes:
        name = call_name(n)
        if name is not None and name not in seen:
            seen[name] = n.via[0][0]
    out = []
    for name, block in seen.items():
        parents = [p for p in seen if p != name and name.startswith(p + ".")]
        out.append(Cluster(name, f"{name}: {block}", max(parents, key=len) if parents else None))
    return tuple(out)


def _arrows(order: list[str], edges) -> tuple[Arrow, ...]:
    before = {name: order[i - 1] if i else None for i, name in enumerate(order)}
    arrows = []
    for src, dst, dst_op in edges:
        style = "flow" if before.get(dst) == src and dst_op != "concat" else JOINS.get(dst_op, "branch")
        arrows.append(Arrow(src, dst, style))
    return tuple(dict.fromkeys(arrows))


def diagram(graph: Graph, collapse: bool = False) -> Diagram:
    fields = receptive_fields(graph)
    first = input_row(graph)
    boxes = [Box(INPUT, "", fmt_shape(graph.input_shape), "input", None, first)]
    if collapse:
        for row in call_rows(graph, fields):
            if row.block:
                detail = f"{row.block} ({len(row.layers)} layers)"
                boxes.append(Box(row.name, detail, fmt_shape(row.shape), "call", None, row))
            else:
                node = graph.node(row.name)
                boxes.append(Box(row.name, op_detail(node), fmt_shape(row.shape), node.op, None, row))
        ops = {b.id: graph.node(b.id).op if b.kind not in ("call", "input") else b.kind for b in boxes}
        edges = [(src, row.name, ops[row.name]) for row in call_rows(graph, fields) for src in row.inputs]
        return Diagram(graph.name, tuple(boxes), _arrows([b.id for b in boxes], edges))
    for row, node in zip(layer_rows(graph, fields), graph.nodes):
        boxes.append(Box(node.name, op_detail(node), fmt_shape(node.shape) if node.shape else "?", node.op,
                         call_name(node), row))
    edges = [(src, n.name, n.op) for n in graph.nodes for src in n.inputs]
    return Diagram(graph.name, tuple(boxes), _arrows([b.id for b in boxes], edges), _clusters(graph))
