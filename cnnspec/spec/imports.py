"""Blocks shared between files: a spec's ``import`` brings in the blocks of other files.

Why a module of its own: an imported file is hostile input like any spec. It is read by the same
safe loader under the same limits, and it may only be a ``.yaml``/``.yml`` file inside the folder
of the spec being checked (after symbolic links; no absolute paths), or ``cnnspec:NAME`` from the
library shipped in ``cnnspec/blocks``. Imports nest at most MAX_IMPORT_DEPTH files deep and read
at most MAX_IMPORTS files in all; a cycle is refused. All blocks share one name space: a name that
two files define is an error naming both. Every problem is a located diagnostic: in the imported
file where it is about that file's text, at the ``import`` entry where it is about the import.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import Diagnostic, SpecError, UsageError
from ..graph.ops import OPS
from .loader import Document, Imported, parse_yaml, read_spec_text
from .messages import describe
from .schema import MAX_IMPORTS, validate
from .suggestions import suggest

LIBRARY = Path(__file__).parent.parent / "blocks"  # cnnspec/blocks, shipped as package data
LIBRARY_PREFIX = "cnnspec:"
MAX_IMPORT_DEPTH = 8
SUFFIXES = (".yaml", ".yml")
RANK = 20
_LIBRARY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")


@dataclass(frozen=True)
class Block:
    """A block's definition and where its text is: ``path`` is its document path (into an imported
    file it starts with that file's :class:`Imported` marker), ``file`` its file's name."""

    name: str
    definition: object
    path: tuple
    file: str


@dataclass(frozen=True)
class _Source:
    """One file whose blocks are in: its document, the path prefix into it, its resolved path (for
    cycles and files imported twice) and the folder its own imports must stay inside."""

    doc: Document
    prefix: tuple
    real: Path | None
    root: Path | None


def library_names() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.yaml"))


def _entries(data) -> list[tuple[object, tuple]]:
    """The import entries of a document with their paths: a single string or a list."""
    value = data.get("import") if isinstance(data, dict) else None
    if isinstance(value, list):
        return [(v, ("import", i)) for i, v in enumerate(value)]
    return [] if value is None else [(value, ("import",))]


class Importer:
    """Reads a spec's imports, depth first, and gathers every block they define."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.blocks: dict[str, Block] = {}
        self.diagnostics: list[Diagnostic] = []
        self.loaded: set[Path] = set()
        self.chain: list[Path] = []  # the files now being read: a file found in it again is a cycle

    def error(self, message: str, path: tuple, key: bool = False):
        self.diagnostics.append(Diagnostic(message, self.doc.loc(path, key=key), rank=RANK))

    def run(self) -> dict[str, Block]:
        origin = self.doc.origin
        real = _real(origin) if origin is not None else None
        root = real.parent if real is not None else None
        self.visit(_Source(self.doc, (), real, root), None, 0)
        return self.blocks

    def visit(self, source: _Source, where: tuple | None, depth: int):
        """Add a file's blocks (``where``: the import entry that brought it in), then its imports'."""
        self.add_blocks(source, where)
        if source.real is not None:
            self.chain.append(source.real)
        for entry, path in _entries(source.doc.data):
            self.follow(entry, source, source.prefix + path, depth)
        if source.real is not None:
            self.chain.pop()

    def follow(self, entry, source: _Source, where: tuple, depth: int):
        if not isinstance(entry, str) or not entry:
            return  # the schema says what an entry must be
        target = self.resolve(entry, source, where)
        if target is None:
            return
        real, label, root = target
        if real in self.chain:
            cycle = " -> ".join([_name(p) for p in self.chain[self.chain.index(real):]] + [_name(real)])
            self.error(f"import cycle: {cycle}; a file may not import itself, directly or through others", where)
            return
        if real in self.loaded:
            return  # imported twice (two files share a library): its blocks are in already
        if depth + 1 > MAX_IMPORT_DEPTH:
            self.error(f"imports nest deeper than {MAX_IMPORT_DEPTH} files, at '{entry}'", where)
            return
        if len(self.loaded) >= MAX_IMPORTS:
            self.error(f"a spec may import at most {MAX_IMPORTS} files in all, and '{entry}' would be one more",
                       where)
            return
        self.loaded.add(real)
        child = self.load(entry, real, label, root, where)
        if child is not None:
            self.visit(child, where, depth + 1)

    def resolve(self, entry: str, source: _Source, where: tuple):
        """(resolved path, name for messages, confining folder) of an entry; None after an error."""
        if any(ord(c) < 32 or c == "\x7f" for c in entry):  # said escaped: an error is one line
            self.error(f"'import' takes a path without control characters, got {ascii(entry)}", where)
            return None
        if entry.startswith(LIBRARY_PREFIX):
            return self.resolve_library(entry, where)
        return self.resolve_file(entry, source, where)

    def resolve_library(self, entry: str, where: tuple):
        name = entry[len(LIBRARY_PREFIX):]
        path = LIBRARY / f"{name}.yaml"
        if not _LIBRARY_NAME.match(name) or not path.is_file():
            known = library_names()
            self.error(f"no block library '{entry}'" + (suggest(name, known) or f" (the library: {', '.join(known)})"),
                       where)
            return None
        real = _real(path)
        return real, str(real), real.parent

    def resolve_file(self, entry: str, source: _Source, where: tuple):
        problem = _path_problem(entry)
        if problem:
            self.error(f"'import' takes {problem}, got {describe(entry)}", where)
            return None
        if source.root is None:
            self.error(f"'import' of a file needs a spec read from a file, and this one is {source.doc.file}; "
                       f"got '{entry}' (the library, '{LIBRARY_PREFIX}NAME', imports from anywhere)", where)
            return None
        label = os.path.normpath(os.path.join(os.path.dirname(source.doc.file), entry))
        try:
            real = _real(source.real.parent / entry)
            inside = real.is_relative_to(source.root)
            mode = os.stat(real).st_mode if inside else 0
        except FileNotFoundError:
            self.error(f"cannot import '{entry}': no such file ({label})", where)
            return None
        except (OSError, ValueError) as exc:
            self.error(f"cannot import '{entry}': {getattr(exc, 'strerror', None) or exc}", where)
            return None
        if not inside:
            self.error(f"'import' reads only files inside the spec's folder ({_name(source.root)}), "
                       f"got '{entry}', which is {real}", where)
            return None
        if not stat.S_ISREG(mode):
            self.error(f"cannot import '{entry}': not a regular file ({label})", where)
            return None
        return real, label, source.root

    def load(self, entry: str, real: Path, label: str, root: Path, where: tuple) -> _Source | None:
        """The imported file, read and checked as a spec is; None where it cannot give blocks."""
        try:
            doc = parse_yaml(read_spec_text(real, label), label)
        except UsageError as exc:
            self.error(f"cannot import '{entry}': {exc}", where)
            return None
        except SpecError as exc:  # located in the imported file
            self.diagnostics.extend(exc.diagnostics)
            return None
        if not isinstance(doc.data, dict):
            self.diagnostics.append(Diagnostic(
                f"an imported file must be a mapping with 'cnnspec: 1' and 'blocks', got {describe(doc.data)}",
                doc.loc(()), rank=RANK))
            return None
        found = list(doc.problems) + validate(doc.data, "library", doc, rank=10)
        self.diagnostics.extend(found)
        if doc.data.get("cnnspec") != 1:
            return None
        return _Source(doc, (Imported(doc),), real, root)

    def add_blocks(self, source: _Source, where: tuple | None):
        blocks = source.doc.data.get("blocks") if isinstance(source.doc.data, dict) else None
        if not isinstance(blocks, dict):
            return
        for name, definition in blocks.items():
            path = source.prefix + ("blocks", name)
            if name in OPS:  # the op wins every call: the block could never run, and its calls fail as the op's
                self.error(f"block '{name}' has the name of an op: a layer '{name}' is always the op, never this "
                           f"block; rename the block (for example '{name}_block')",
                           where if where is not None else path, key=where is None)
                continue
            first = self.blocks.get(name)
            if first is None:
                self.blocks[name] = Block(name, definition, path, source.doc.file)
                continue
            here = self.doc.loc(path, key=True)
            there = self.doc.loc(first.path, key=True)
            self.error(f"block '{name}' is defined twice, at {there.file}:{there.line} and at "
                       f"{here.file}:{here.line}; blocks of imported files share one name space, so rename one",
                       where if where is not None else path, key=where is None)


def _path_problem(entry: str) -> str | None:
    """Why an import path is refused before any file is touched; None where it may be looked for."""
    checks = (
        (lambda e: PurePosixPath(e).is_absolute() or PureWindowsPath(e).is_absolute()
         or PureWindowsPath(e).drive or e.startswith("~"), "a path relative to the importing file"),
        (lambda e: "\\" in e, "a path with '/' between folders"),
        (lambda e: not e.endswith(SUFFIXES), "a .yaml or .yml file"),
    )
    return next((words for test, words in checks if test(entry)), None)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _name(path: Path) -> str:
    return path.name or str(path)


def collect_blocks(doc: Document) -> tuple[dict[str, Block], list[Diagnostic]]:
    """Every block a spec can call (its own and its imports'), and the problems of its imports."""
    importer = Importer(doc)
    return importer.run(), importer.diagnostics
