"""The figures of each row of ``cnnspec check``: one per layer, or with ``--blocks`` one per block call.

A row holds numbers, never text; :mod:`cnnspec.graph.report` formats them for the table and the JSON.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import INPUT, Graph
from .receptive import Field, input_field, receptive_fields


@dataclass(frozen=True)
class Row:
    """One layer, or one block call (``block`` set, ``layers`` its layers in order)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    shape: tuple | None
    params: int
    macs: int
    field: Field | None
    block: str | None = None
    layers: tuple[str, ...] = ()

    @property
    def flops(self) -> int:
        """One multiply and one add per MAC: the convention FLOPs = 2 x MACs, said wherever shown."""
        return 2 * self.macs


def op_label(node) -> str:
    act = node.attrs.get("activation")
    return f"{node.op}+{act}" if act else node.op


def input_row(graph: Graph) -> Row:
    return Row(INPUT, "input", (), tuple(graph.input_shape), 0, 0, input_field(graph.input_shape))


def layer_rows(graph: Graph, fields: dict | None = None) -> list[Row]:
    fields = receptive_fields(graph) if fields is None else fields
    return [Row(n.name, op_label(n), tuple(n.inputs), n.shape, n.params, n.macs, fields.get(n.name))
            for n in graph.nodes]


def call_name(node) -> str | None:
    """The innermost block call that produced ``node`` ('layer1.0'), or None outside any block."""
    return node.call[:-1] if node.call else None


def _calls_holding_calls(graph: Graph) -> set[str]:
    """The calls whose block calls other blocks (GoogLeNet's inception calls basic_conv): a name that
    prefixes a deeper call's name."""
    depth: dict[str, int] = {}
    for n in graph.nodes:
        key = call_name(n)
        if key is not None:
            depth.setdefault(key, len(n.via))
    holding = set()
    for key, d in depth.items():
        parts = key.split(".")
        for i in range(1, len(parts)):
            outer = ".".join(parts[:i])
            if depth.get(outer, d) < d:
                holding.add(outer)
    return holding


def call_rows(graph: Graph, fields: dict | None = None) -> list[Row]:
    """One row per innermost block call (its layers are consecutive: blocks expand in place), and one
    per layer outside any block. A call whose block calls other blocks has its own layers shown one
    per row beside its inner calls' rows: they may come before, between and after those (an inception's
    pool branch and concat around its BasicConv2d calls), so as one row they would repeat a name, read
    their own output, or stand for the whole call with part of its figures. A call's inputs are the
    rows it reads, its figures its layers' sums, its shape and field those of its last layer (the
    call's output)."""
    fields = receptive_fields(graph) if fields is None else fields
    holding = _calls_holding_calls(graph)
    groups: list[tuple[str | None, list]] = []
    for n in graph.nodes:
        key = call_name(n)
        key = None if key in holding else key
        if key is not None and groups and groups[-1][0] == key:
            groups[-1][1].append(n)
        else:
            groups.append((key, [n]))
    owner = {INPUT: INPUT}
    for key, nodes in groups:
        for n in nodes:
            owner[n.name] = key if key is not None else n.name
    rows = []
    for key, nodes in groups:
        if key is None:
            (n,) = nodes
            rows.append(Row(n.name, op_label(n), tuple(owner.get(i, i) for i in n.inputs), n.shape, n.params,
                            n.macs, fields.get(n.name)))
            continue
        names = {n.name for n in nodes}
        inputs = tuple(dict.fromkeys(owner.get(i, i) for n in nodes for i in n.inputs if i not in names))
        last = nodes[-1]
        rows.append(Row(key, nodes[0].via[0][0], inputs, last.shape, sum(n.params for n in nodes),
                        sum(n.macs for n in nodes), fields.get(last.name), block=nodes[0].via[0][0],
                        layers=tuple(n.name for n in nodes)))
    return rows


def output_marks(graph: Graph) -> dict[str, str]:
    """Layer -> its mark in the table ('output', or 'output 2' of several), where the spec lists its
    outputs: a spec whose output is its last layer, as always, shows none."""
    names = graph.output_names
    if not graph.nodes or names == (graph.nodes[-1].name,):
        return {}
    return {name: "output" if len(names) == 1 else f"output {k}" for k, name in enumerate(names, start=1)}
