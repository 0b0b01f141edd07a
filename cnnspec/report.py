"""Printing a checked graph: the per-layer table and the ``--json`` document (torchinfo-style)."""
from __future__ import annotations

import unicodedata

from .ir import INPUT, Graph
from .ops import fmt_shape

MAX_INPUTS_WIDTH = 36


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


def table(graph: Graph) -> str:
    show_inputs = not graph.is_sequential()
    header = ["Layer", "Op"] + (["Inputs"] if show_inputs else []) + ["Output shape", "Params", "MACs"]
    rows = [[INPUT, "input"] + ([""] if show_inputs else []) + [fmt_shape(graph.input_shape), "", ""]]
    for n in graph.nodes:
        op = n.op if not n.attrs.get("activation") else f"{n.op}+{n.attrs['activation']}"
        row = [n.name, op]
        if show_inputs:
            row.append(_clip(", ".join(n.inputs), MAX_INPUTS_WIDTH))
        row += [fmt_shape(n.shape) if n.shape else "?", f"{n.params:,}" if n.params else "0",
                f"{n.macs:,}" if n.macs else "0"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    right = {len(header) - 2, len(header) - 1}

    def line(cells):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    title = f"{graph.name} ({graph.file})"
    out = [title, rule, line(header), rule]
    out += [line(r) for r in rows]
    out += [rule,
            f"Layers: {len(graph.nodes)}   Input: {fmt_shape(graph.input_shape)}   "
            f"Output: {fmt_shape(graph.output_shape) if graph.output_shape else '?'}",
            f"Params: {graph.params:,} ({human(graph.params)})",
            f"MACs: {graph.macs:,} ({human(graph.macs)}) per sample",
            f"Activation memory: {graph.activation_bytes:,} bytes ({human_bytes(graph.activation_bytes)}) "
            f"per sample, float32"]
    if graph.classes:
        shown = ", ".join(graph.classes[:10]) + (", ..." if len(graph.classes) > 10 else "")
        out.append(f"Classes: {len(graph.classes)} ({shown})")
    return "\n".join(out)


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


def _layer_json(node, trusted: bool) -> dict:
    """One layer; its figures are null where they cannot be trusted (an invalid spec's partial graph)."""
    return {"name": node.name, "op": node.op, "inputs": list(node.inputs),
            "output_shape": list(node.shape) if trusted else None,
            "params": node.params if trusted else None, "macs": node.macs if trusted else None}


def to_json(path: str, graph: Graph | None, diagnostics, warnings=()) -> dict:
    """The contract's document. An invalid spec's totals and output shape are null: the graph is partial
    (failed layers are missing), so its sums would read as real figures of a net that does not check."""
    valid = graph is not None and not diagnostics
    trusted = trusted_layers(graph) if graph else set()
    doc = {
        "spec": str(path),
        "valid": valid,
        "name": graph.name if graph else None,
        "input_shape": list(graph.input_shape) if graph else None,
        "output_shape": list(graph.output_shape) if valid and graph.output_shape else None,
        "params": graph.params if valid else None,
        "macs": graph.macs if valid else None,
        "activation_bytes": graph.activation_bytes if valid else None,
        "classes": list(graph.classes) if graph and graph.classes else None,
        "layers": [_layer_json(n, valid or n.name in trusted) for n in (graph.nodes if graph else ())],
        "errors": [d.to_json(path) for d in diagnostics],
        "warnings": [w.to_json(path) for w in warnings],  # cnnspec's extension: see cnnspec.lint
    }
    return doc
