"""One check of one document's text, exactly as ``cnnspec check`` runs it, kept with what the requests
need: the parsed document (positions of every key and value), the graph, the ``--json`` report."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..errors import Diagnostic, Location, SpecError, sort_diagnostics
from ..graph.lint import lint
from ..graph.report import to_json
from ..spec.compiler import compile_document
from ..spec.imports import collect_blocks
from ..spec.loader import MAX_FILE_BYTES, Imported, decode_spec_bytes, parse_yaml
from .text import Lines


@dataclass
class Analysis:
    """What ``check`` found in one version of a document. ``file`` is the name in its messages (the
    document's path), ``origin`` the path imports resolve against (None for an unsaved buffer)."""

    file: str
    origin: Path | None
    text: str
    version: int | None = None
    doc: object = None  # cnnspec.spec.loader.Document, or None where the text does not parse
    graph: object = None  # cnnspec.graph.ir.Graph, or None where it could not be built
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    report: dict | None = None
    encoding: str = "utf-16"  # the client's position encoding

    @cached_property
    def lines(self) -> Lines:
        return Lines(self.text, self.encoding)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return self.errors + self.warnings

    @cached_property
    def shapes(self) -> dict:
        """Layer name -> its ``check --json`` row (``output_shape`` null where not trusted)."""
        return {row["name"]: row for row in (self.report or {}).get("layers", ())}

    @cached_property
    def blocks(self) -> dict:
        """Every block this document can call (its own and its imports'): name -> imports.Block."""
        if self.doc is None or not isinstance(self.doc.data, dict):
            return {}
        try:
            return collect_blocks(self.doc)[0]
        except (SpecError, OSError, ValueError, RecursionError):
            return {}

    @cached_property
    def entries(self) -> list[tuple[int, object, list]]:
        """The top-level layer items: (index, raw item, the graph's nodes it made, in order). A block
        call's nodes are those whose outermost call is that item; its output is the last of them."""
        data = self.doc.data if self.doc is not None else None
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, list) or self.graph is None:
            return []
        by_line: dict[tuple, list] = {}
        for node in self.graph.nodes:
            where = node.via[-1][1] if node.via else node.location
            if where is not None and where.file == self.file:
                by_line.setdefault((where.line, where.column), []).append(node)
        out = []
        for i, raw in enumerate(layers):
            loc = self.doc.loc(("layers", i))
            out.append((i, raw, by_line.get((loc.line, loc.column), [])))
        return out

    def block_location(self, name: str) -> Location | None:
        """Where a block's key is written (in this file or an imported one)."""
        block = self.blocks.get(name)
        if block is None:
            return None
        path = block.path
        if path and isinstance(path[0], Imported):
            return path[0].doc.loc(path[1:], key=True)
        return self.doc.loc(path, key=True)


def _usage(file: str, message: str) -> Diagnostic:
    return Diagnostic(message, Location(file, 1, 1), rank=0)


def analyse(text: str, file: str, origin: Path | None, version: int | None = None,
            encoding: str = "utf-16") -> Analysis:
    """``check``'s pipeline on the editor's text: the same byte rules (size, UTF-8, NUL), parse,
    compile (imports read relative to ``origin``), sort, and lint and report where it checks."""
    result = Analysis(file, origin, text, version, encoding=encoding)
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate from the client is not UTF-8
    if len(raw) > MAX_FILE_BYTES:
        result.errors = [_usage(file, f"{file}: file is {len(raw)} bytes; a spec may be at most {MAX_FILE_BYTES} bytes")]
        return result
    try:
        clean = decode_spec_bytes(raw, file)
        doc = parse_yaml(clean, file)
    except SpecError as exc:
        result.errors = list(exc.diagnostics)
        return result
    doc.origin = origin
    result.doc = doc
    graph, diags = compile_document(doc)
    result.graph, result.errors = graph, sort_diagnostics(diags)
    valid = graph is not None and not diags
    result.warnings = lint(graph) if valid else []
    result.report = to_json(file, graph, result.errors, result.warnings)
    return result


def check_line(d: Diagnostic) -> str:
    """The message as ``check`` prints it, without its ``FILE:LINE:COL: severity:`` head."""
    rendered = d.render()
    head = f"{d.location}: {d.severity}: " if d.location else f"<spec>: {d.severity}: "
    return rendered[len(head):] if rendered.startswith(head) else rendered

