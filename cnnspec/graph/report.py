"""Printing a checked graph: the per-layer table and the ``--json`` document (torchinfo-style).

The table's columns are one table (:data:`COLUMNS`); which of them show is chosen by the width
available (:func:`choose_columns`, in :data:`PRIORITY` order) or named with ``--columns``.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from .figures import Row, call_rows, input_row, layer_rows, output_marks
from .ir import INPUT, Graph
from .ops import fmt_shape
from .receptive import as_number, receptive_fields

MAX_INPUTS_WIDTH = 36
DEFAULT_WIDTH = 80


def human(n: float, unit: str = "") -> str:
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def human_bytes(n: int) -> str:
    for factor, suffix in ((1024 ** 3, "GiB"), (1024 ** 2, "MiB"), (1024, "KiB")):
        if n >= factor:
            return f"{n / factor:.2f} {suffix}"
    return f"{n} B"


def display_width(text: str) -> int:
    """Terminal columns: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _pair(values) -> str:
    """A [height, width] figure: one number where both agree (the usual case)."""
    h, w = (str(v) if not isinstance(v, Fraction) or v.denominator > 1 else str(v.numerator) for v in values)
    return h if h == w else f"{h}x{w}"


def _share(part: int, total: int) -> str:
    if not part or not total:
        return ""
    pct = 100 * part / total
    return "<0.1%" if pct < 0.1 else f"{pct:.1f}%"


@dataclass(frozen=True)
class Totals:
    params: int
    macs: int


@dataclass(frozen=True)
class Column:
    """One column: its header, alignment and how a row's cell reads (the input row leaves figures blank)."""

    header: str
    cell: Callable[[Row, Totals], str]
    right: bool = False
    doc: str = ""


def _number(value: int) -> str:
    return f"{value:,}" if value else "0"


COLUMNS: dict[str, Column] = {
    "name": Column("Layer", lambda r, t: r.name, doc="the layer's name (with --blocks: the call's)"),
    "op": Column("Op", lambda r, t: r.op, doc="the op, +its fused activation (with --blocks: the block)"),
    "inputs": Column("Inputs", lambda r, t: _clip(", ".join(r.inputs), MAX_INPUTS_WIDTH), doc="what it reads"),
    "shape": Column("Output shape", lambda r, t: fmt_shape(r.shape) if r.shape else "?"),
    "rf": Column("RF", lambda r, t: _pair(r.field.size) if r.field else "?", right=True,
                 doc="receptive field in input pixels"),
    "stride": Column("Stride", lambda r, t: _pair(r.field.stride) if r.field else "?", right=True,
                     doc="effective stride: input pixels between neighbouring outputs"),
    "params": Column("Params", lambda r, t: "" if r.name == INPUT else _number(r.params), right=True),
    "params%": Column("Params%", lambda r, t: _share(r.params, t.params), right=True, doc="share of the params"),
    "macs": Column("MACs", lambda r, t: "" if r.name == INPUT else _number(r.macs), right=True),
    "macs%": Column("MACs%", lambda r, t: _share(r.macs, t.macs), right=True, doc="share of the MACs"),
    "flops": Column("FLOPs", lambda r, t: "" if r.name == INPUT else _number(r.flops), right=True,
                    doc="2 x MACs"),
}
REQUIRED = ("name", "op", "shape")
# the order in which columns are added while they fit the width; the table keeps COLUMNS' order
PRIORITY = REQUIRED + ("params", "macs", "rf", "stride", "inputs", "params%", "macs%", "flops")


def parse_columns(text: str) -> tuple[str, ...]:
    """``--columns name,op,rf`` (or ``all``); an unknown name is a ValueError that lists the known ones."""
    if text.strip() == "all":
        return tuple(COLUMNS)
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown or not keys:
        raise ValueError(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"(choose from {', '.join(COLUMNS)}, or all)" if unknown else "no column named")
    return keys


def _render(keys, cells, widths) -> list[str]:
    def line(values):
        parts = [v.rjust(widths[k]) if COLUMNS[k].right else v.ljust(widths[k]) for k, v in zip(keys, values)]
        return "  ".join(parts).rstrip()

    return [line(row) for row in cells]


def choose_columns(cells: dict[str, list[str]], width: int, sequential: bool) -> tuple[str, ...]:
    """The required columns, then each in PRIORITY order that still fits ``width``; in COLUMNS' order."""
    widths = {k: max(len(c) for c in column) for k, column in cells.items()}
    chosen = list(REQUIRED)
    used = sum(widths[k] for k in chosen) + 2 * (len(chosen) - 1)
    for key in PRIORITY[len(REQUIRED):]:
        if key == "inputs" and sequential:
            continue
        if used + 2 + widths[key] <= width:
            chosen.append(key)
            used += 2 + widths[key]
    return tuple(k for k in COLUMNS if k in chosen)


def table(graph: Graph, columns: tuple[str, ...] | None = None, width: int = DEFAULT_WIDTH,
          blocks: bool = False, memory=None) -> str:
    """The table and its totals. ``columns``: the keys to show (None: what fits ``width``);
    ``blocks``: one row per block call; ``memory``: a :class:`cnnspec.graph.memory.Memory` to add."""
    fields = receptive_fields(graph)
    rows = [input_row(graph)] + (call_rows(graph, fields) if blocks else layer_rows(graph, fields))
    totals = Totals(graph.params, graph.macs)
    cells = {k: [col.header] + [col.cell(r, totals) for r in rows] for k, col in COLUMNS.items()}
    if blocks:
        cells["name"][0], cells["op"][0] = "Call", "Block/op"
    marks = output_marks(graph)
    for k, row in enumerate(rows, start=1):
        mine = [marks[name] for name in (row.layers or (row.name,)) if name in marks]
        if mine:
            cells["name"][k] += f" ({', '.join(mine)})"
    sequential = graph.is_sequential() and not blocks
    keys = columns or choose_columns(cells, width, sequential)
    widths = {k: max(len(c) for c in cells[k]) for k in keys}
    lines = _render(keys, list(zip(*(cells[k] for k in keys))), widths)
    rule = "-" * (sum(widths.values()) + 2 * (len(keys) - 1))
    out = [f"{graph.name} ({graph.file})", rule, lines[0], rule, *lines[1:], rule]
    out += _totals(graph)
    out += _legend(keys)
    if columns is None:
        out += _left_out(keys, width, graph.is_sequential() and not blocks)
    if memory is not None:
        out += memory_lines(memory)
    return "\n".join(out)


def _outputs_text(graph: Graph) -> str:
    if not graph.several_outputs:
        return f"Output: {fmt_shape(graph.output_shape) if graph.output_shape else '?'}"
    return "Outputs: " + ", ".join(f"{n.name} {fmt_shape(n.shape) if n.shape else '?'}" for n in graph.output_nodes)


def _totals(graph: Graph) -> list[str]:
    out = [f"Layers: {len(graph.nodes)}   Input: {fmt_shape(graph.input_shape)}   {_outputs_text(graph)}",
           f"Params: {graph.params:,} ({human(graph.params)})",
           f"MACs: {graph.macs:,} ({human(graph.macs)}) per sample",
           f"FLOPs: {2 * graph.macs:,} ({human(2 * graph.macs)}) per sample, counted as 2 x MACs",
           f"Activation memory: {graph.activation_bytes:,} bytes ({human_bytes(graph.activation_bytes)}) "
           f"per sample, float32"]
    if graph.classes:
        shown = ", ".join(graph.classes[:10]) + (", ..." if len(graph.classes) > 10 else "")
        out.append(f"Classes: {len(graph.classes)} ({shown})")
    if graph.parameters:
        values = ", ".join(f"{k}={_param_text(v)}" for k, v in graph.parameters)
        out.append(f"Parameters: {values}" + (f" (scale {graph.scale})" if graph.scale else ""))
    return out


def _param_text(value) -> str:
    """A spec parameter's value as the spec would write it (true, 1.4, relu)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _args_json(value):
    """A layer's arguments as checked (expressions evaluated, defaults filled in), as JSON values."""
    if isinstance(value, (list, tuple)):
        return [_args_json(v) for v in value]
    if hasattr(value, "items"):
        return {str(k): _args_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value) if isinstance(value, float) else str(value)


def _param_json(value):
    return float(value) if isinstance(value, float) else value


def _legend(keys) -> list[str]:
    out = []
    if "rf" in keys:
        out.append("RF: receptive field in input pixels: the largest over all paths, padding counted")
        out.append("    as pixels (not clipped to the image); a vector's spans every position")
    if "stride" in keys:
        out.append("Stride: effective stride, input pixels between neighbouring outputs")
    return out


def _left_out(keys, width: int, sequential: bool) -> list[str]:
    """One line naming the columns that did not fit, and how to get them (a pipe gets 80 columns: a
    column that vanishes without a word looks like a figure cnnspec cannot give)."""
    missing = [k for k in PRIORITY if k not in keys and not (k == "inputs" and sequential)]
    if not missing:
        return []
    return [f"Hidden at {width} columns: {', '.join(missing)} (--columns all)"]


def memory_lines(memory, width: int = DEFAULT_WIDTH) -> list[str]:
    """Each mode's total and how it adds up, then every part with its assumption (wrapped to ``width``)."""
    import textwrap

    inference, training = memory.inference, memory.training
    out = [f"Memory at batch {memory.batch}, float32:",
           f"  inference {human_bytes(inference.bytes)} = " + " + ".join(p.name for p in inference.parts),
           *textwrap.wrap(f"training ({memory.optimizer}) {human_bytes(training.bytes)} = {training.rule}", width - 2,
                          initial_indent="  ", subsequent_indent="      ")]
    seen = set()
    names = max(len(p.name) for p in inference.parts + training.parts)
    for part in inference.parts + training.parts:
        if part.name in seen:
            continue
        seen.add(part.name)
        head = f"  {part.name.ljust(names)}  {human_bytes(part.bytes).rjust(10)}  "
        out += textwrap.wrap(part.assumption, width, initial_indent=head, subsequent_indent=" " * len(head),
                             break_on_hyphens=False)
    return out


def trusted_layers(graph: Graph) -> set[str]:
    """Layers whose figures come from real shapes: inferred, from inputs whose shapes were too. After
    an 'expect' that disagrees the shape pass goes on with the author's shape, so what follows is not."""
    handed_on, trusted = {INPUT}, set()
    for n in graph.nodes:
        if n.shape is not None and all(i in handed_on for i in n.inputs):
            trusted.add(n.name)
            if n.expect is None or tuple(n.expect) == tuple(n.shape):
                handed_on.add(n.name)
    return trusted


def _field_json(field, trusted: bool) -> dict:
    if not trusted or field is None:
        return {"receptive_field": None, "effective_stride": None}
    return {"receptive_field": list(field.size), "effective_stride": [as_number(s) for s in field.stride]}


def _share_json(part: int, total: int):
    return round(part / total, 6) if total else 0.0


def _row_json(row: Row, trusted: bool, totals: Totals) -> dict:
    """One layer (or call); its figures are null where they cannot be trusted (an invalid spec's partial graph)."""
    doc = {"output_shape": list(row.shape) if trusted else None,
           "params": row.params if trusted else None, "macs": row.macs if trusted else None,
           "flops": row.flops if trusted else None, **_field_json(row.field, trusted),
           "params_share": _share_json(row.params, totals.params) if trusted else None,
           "macs_share": _share_json(row.macs, totals.macs) if trusted else None}
    return doc


def to_json(path: str, graph: Graph | None, diagnostics, warnings=(), blocks: bool = False, memory=None) -> dict:
    """The contract's document, plus cnnspec's figures (``flops``, ``receptive_field``, ``effective_stride``,
    shares; ``blocks`` and ``memory`` where asked). An invalid spec's totals and output shape are null: the
    graph is partial (failed layers are missing), so its sums would read as real figures of a net that does
    not check."""
    valid = graph is not None and not diagnostics
    trusted = trusted_layers(graph) if graph else set()
    fields = receptive_fields(graph) if graph else {}
    totals = Totals(graph.params, graph.macs) if graph else Totals(0, 0)
    layers = []
    for row, node in zip(layer_rows(graph, fields) if graph else (), graph.nodes if graph else ()):
        ok = valid or node.name in trusted
        layers.append({"name": node.name, "op": node.op, "inputs": list(node.inputs), **_row_json(row, ok, totals),
                       "args": _args_json(node.attrs)})
    doc = {
        "spec": str(path),
        "valid": valid,
        "name": graph.name if graph else None,
        "input_shape": list(graph.input_shape) if graph else None,
        "output_shape": list(graph.output_shape) if valid and graph.output_shape else None,
        "params": graph.params if valid else None,
        "macs": graph.macs if valid else None,
        "flops": 2 * graph.macs if valid else None,
        "activation_bytes": graph.activation_bytes if valid else None,
        "classes": list(graph.classes) if graph and graph.classes else None,
        "outputs": [{"name": n.name, "shape": list(n.shape) if valid and n.shape else None}
                    for n in graph.output_nodes] if graph and graph.nodes else [],
        "layers": layers,
        "errors": [d.to_json(path) for d in diagnostics],
        "warnings": [w.to_json(path) for w in warnings],  # cnnspec's extension: see cnnspec.graph.lint
    }
    if graph is not None and graph.parameters:  # the spec's params as resolved (--scale, --set)
        doc["scale"] = graph.scale
        doc["parameters"] = {k: _param_json(v) for k, v in graph.parameters}
    if blocks and valid:
        doc["blocks"] = [{"name": r.name, "block": r.block, "op": None if r.block else r.op,
                          "layers": list(r.layers) or [r.name], "inputs": list(r.inputs), **_row_json(r, True, totals)}
                         for r in call_rows(graph, fields)]
    if memory is not None:
        doc["memory"] = memory.to_json()
    return doc
