"""The import graph of a set of packages, read from their source with ``ast`` (nothing is imported).

An edge A -> B means module A imports module B: at the top of the file or inside a function (both tie
the modules together), but not under ``if TYPE_CHECKING:``, which never runs. ``from P import x``
is an edge to the module ``P.x`` where that is a module, else to ``P``. A package is not counted as
imported by its own submodules (Python runs ``P/__init__`` first, but that is how packages work, not
a dependency anyone wrote). Used by ``test_architecture.py``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One import statement's edge: where it is and what it names."""

    source: str  # importing module
    target: str  # imported module
    path: Path
    line: int


def modules_under(roots: dict[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is it a package's __init__) for every .py file under each root package."""
    found = {}
    for package, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST):
    """Every Import/ImportFrom below ``node``, skipping the body of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes_of(other)
            continue
        yield from _import_nodes_of(child)


def _import_nodes_of(node: ast.AST):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    yield from _import_nodes(node)


def _known(name: str, modules) -> str | None:
    """The longest prefix of ``name`` that is one of ``modules`` (``a.b.c`` -> ``a.b`` if c is a name in it)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _statements(modules: dict[str, tuple[Path, bool]]):
    """(module, its file, import node, the absolute names it imports) for every import statement."""
    for module, (path, is_package) in modules.items():
        package = module if is_package else module.rpartition(".")[0]
        for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                yield module, path, node, [alias.name for alias in node.names]
                continue
            if node.level:
                base = package.split(".")
                origin = ".".join(base[:len(base) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            yield module, path, node, [f"{origin}.{alias.name}" for alias in node.names]


def imports(roots: dict[str, Path]) -> list[Import]:
    """Every import edge between the modules under ``roots``, in file and line order."""
    modules = modules_under(roots)
    edges = []
    for module, path, node, names in _statements(modules):
        targets = [name if name in modules else _known(name, modules) for name in names]
        edges += [Import(module, t, path, node.lineno) for t in dict.fromkeys(targets) if t and t != module]
    return edges


def outside_imports(roots: dict[str, Path]) -> list[Import]:
    """Every import of a top-level package outside ``roots`` (``torch``, ``onnx``, ``numpy``...), by
    its top-level name."""
    modules = modules_under(roots)
    found = []
    for module, path, node, names in _statements(modules):
        for name in names:
            if _known(name, modules) is None:
                found.append(Import(module, name.split(".")[0], path, node.lineno))
    return found


def cycles(edges: list[Import]) -> list[list[str]]:
    """One shortest cycle through each strongly connected group of modules (Tarjan, then a BFS),
    as [a, b, ..., a]; empty when the graph has none."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # iterative enough for a package: depth is bounded by the module count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_shortest_cycle(group[0], set(group), graph) for group in groups]


def _shortest_cycle(start: str, group: set[str], graph: dict[str, set[str]]) -> list[str]:
    parents = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & group):
                if w == start:
                    path = [v]
                    while parents[path[-1]] is not None:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    return [start]
