"""Completion, read from the text before the cursor (it works while the text is half typed): op and
block names where an op goes, an op's (or block's) argument names inside its mapping, enum values,
earlier layer names inside ``in:``, parameter names after ``$``, and scale names."""
from __future__ import annotations

import re

from lsprotocol import types

from ..graph.ops import OPS
from ..spec.schema import RESERVED
from . import docs
from .analysis import Analysis

MAX_PREFIX = 2000  # what the context is read from: a hostile megabyte-long line costs no more
_WORD = r"[A-Za-z0-9_.\-]*"
_DOLLAR = re.compile(r"\$([A-Za-z0-9_]*)$")
_IN_VALUE = re.compile(r"(?:^|[{,\s])in:\s*(?:\[[^\]]*?)?(" + _WORD + r")$")
_OP_SLOT = re.compile(r"^\s*-\s+(?:\{\s*)?([A-Za-z0-9_]*)$")
_KEY_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):\s*(" + _WORD + r")$")
_OPEN_ARGS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):\s*\{([^{}]*)$")
_KEY_START = re.compile(r"(?:^\s*|[{,]\s*)([A-Za-z_]*)$")
_SCALE = re.compile(r"(?:--scale[ =]|\bscale:\s*)([A-Za-z0-9_\-]*)$")
_BLOCK_KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):\s*$")


def _item(label, kind, detail=None, doc=None, sort=None) -> types.CompletionItem:
    return types.CompletionItem(
        label=label, kind=kind, detail=detail, sort_text=sort,
        documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=doc) if doc else None)


def _enclosing_op(lines: list[str], line: int, prefix: str) -> str | None:
    """The op or block whose argument mapping the cursor is in: ``op: {...`` open on this line, or a
    block-style mapping under an ``op:`` line with less indentation."""
    found = _OPEN_ARGS.search(prefix)
    if found:
        return found.group(1)
    indent = len(prefix) - len(prefix.lstrip())
    for j in range(min(line, len(lines)) - 1, max(line - 40, -1), -1):
        text = lines[j]
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        own = len(text) - len(text.lstrip())
        if own < indent:
            head = _BLOCK_KEY.match(text.replace("- ", "  ", 1))
            return head.group(2) if head else None
    return None


def _raw_keys(data, key) -> list[str]:
    value = data.get(key) if isinstance(data, dict) else None
    return [k for k in value if isinstance(k, str)] if isinstance(value, dict) else []


def _block_at(a: Analysis, line: int) -> str | None:
    """The block of this file whose text holds a 0-based line, if any."""
    data = a.doc.data if a.doc is not None else None
    blocks = data.get("blocks") if isinstance(data, dict) else None
    if not isinstance(blocks, dict):
        return None
    starts = sorted((a.doc.loc(("blocks", b), key=True).line - 1, b) for b in blocks)
    after = [a.doc.loc((k,), key=True).line - 1 for k in data if a.doc.loc((k,), key=True).line - 1 > starts[0][0]
             and k != "blocks"] if starts else []
    end = min([s for s in after if s > starts[-1][0]], default=10**9) if starts else 0
    inside = [b for s, b in starts if s <= line < end]
    return inside[-1] if inside else None


def _params(a: Analysis, line: int) -> list[types.CompletionItem]:
    """$names: the enclosing block's parameters, and the spec's own ``params`` (third edition)."""
    out = []
    block = _block_at(a, line)
    if block is not None:
        definition = a.doc.data["blocks"][block]
        for name, default in docs.block_params(definition).items():
            out.append(_item(str(name), types.CompletionItemKind.Variable, f"parameter of {block}",
                             f"default: `{default}`" if default is not None else "required"))
    data = a.doc.data if a.doc is not None else None
    params = data.get("params") if isinstance(data, dict) else None
    if isinstance(params, dict):
        out += [_item(str(k), types.CompletionItemKind.Variable, "spec parameter", f"default: `{v}`")
                for k, v in params.items()]
    return out


def _earlier_layers(a: Analysis, line: int) -> list[types.CompletionItem]:
    block = _block_at(a, line)
    data = a.doc.data if a.doc is not None else None
    if block is not None:
        items = data["blocks"][block].get("layers") if isinstance(data["blocks"][block], dict) else None
        base = ("blocks", block, "layers")
        names = ["input"]
        inputs = data["blocks"][block].get("inputs")
        if isinstance(inputs, list):
            names = [str(i) for i in inputs]
    else:
        items, base, names = data.get("layers") if isinstance(data, dict) else None, ("layers",), ["input"]
    if isinstance(items, list):
        for i, raw in enumerate(items):
            if a.doc.loc(base + (i,)).line - 1 >= line:
                break
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                names.append(raw["name"])
            elif block is None:
                names += [n for n in _auto_names(a, i)]
    return [_item(n, types.CompletionItemKind.Reference, "layer") for n in dict.fromkeys(names)]


def _auto_names(a: Analysis, index: int) -> list[str]:
    for i, _raw, nodes in a.entries:
        if i == index and nodes and not nodes[-1].via:
            return [nodes[-1].name]
    return []


def _ops_and_blocks(a: Analysis) -> list[types.CompletionItem]:
    out = [_item(name, types.CompletionItemKind.Function, op.doc, docs.op_markdown(name), "0" + name)
           for name, op in OPS.items()]
    for name, block in a.blocks.items():
        out.append(_item(name, types.CompletionItemKind.Module, f"block ({block.file})",
                         docs.block_markdown(name, block.definition, None), "1" + name))
    return out


def _arguments(a: Analysis, op: str) -> list[types.CompletionItem]:
    if op in OPS:
        return [_item(name, types.CompletionItemKind.Property, docs.arg_default(arg), docs.arg_line(name, arg))
                for name, arg in OPS[op].args.items()]
    block = a.blocks.get(op)
    if block is not None:
        return [_item(str(k), types.CompletionItemKind.Property, "required" if v is None else f"= {v}")
                for k, v in docs.block_params(block.definition).items()]
    return []


def _enum(op: str | None, key: str) -> list[types.CompletionItem]:
    args = [OPS[op].args[key]] if op in OPS and key in OPS[op].args else \
        [o.args[key] for o in OPS.values() if key in o.args]
    values = []
    for arg in args:
        values += [v for v in docs.enum_values(arg.schema) if isinstance(v, str)]
    return [_item(v, types.CompletionItemKind.EnumMember, key) for v in dict.fromkeys(values)]


def complete(live: Analysis, a: Analysis, position: types.Position) -> list[types.CompletionItem]:
    """``live``: the current text's analysis (its lines); ``a``: one with a parsed document (names)."""
    line = position.line
    text = live.lines.line(line)
    prefix = text[:live.lines.from_utf16(line, position.character)][-MAX_PREFIX:]
    if a.doc is None:
        return _ops_and_blocks(a) if _OP_SLOT.search(prefix) else []
    if _DOLLAR.search(prefix):
        return _params(a, line)
    found = _SCALE.search(prefix)
    if found:
        return [_item(k, types.CompletionItemKind.Constant, "scale") for k in _raw_keys(a.doc.data, "scales")]
    if _IN_VALUE.search(prefix):
        return _earlier_layers(a, line)
    if _OP_SLOT.search(prefix):
        return _ops_and_blocks(a)
    op = _enclosing_op(live.lines.lines, line, prefix)
    found = _KEY_VALUE.search(prefix)
    if found and found.group(1) not in RESERVED:
        values = _enum(op if op != found.group(1) else None, found.group(1))
        if values:
            return values
    if op is not None and _KEY_START.search(prefix) and not (found and found.group(1) == op):
        return _arguments(a, op)
    return []
