"""Read a spec file safely: strict UTF-8, YAML 1.2 scalars, positions for every node.

The tree is built from PyYAML's event stream with an explicit stack (no recursion, no C composer,
no constructors), so deep nesting, tags, alias bombs and YAML 1.1 surprises become diagnostics
at their line instead of crashes, hangs or silent misreadings.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import Diagnostic, Location, SpecError, UsageError
from .yamlhints import explain_yaml_error

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000  # counted with alias expansions, so a billion-laughs file stops early
MAX_INT_DIGITS = 15

_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_YAML11_BOOL = {"yes", "no", "on", "off", "y", "n"}
_YAML11_NUMBER = re.compile(r"[-+]?(0[0-7]+|0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*_[0-9_]*|[0-9]+(:[0-5]?[0-9])+)")
_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(inf|Inf|INF|nan|NaN|NAN)")

Path_ = tuple  # a path into the document: keys and list indices


@dataclass
class Document:
    """A parsed spec: plain Python data plus the position of every value and key, by path."""

    file: str
    data: object
    value_pos: dict = field(default_factory=dict)
    key_pos: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)  # located problems that did not stop parsing
    origin: Path | None = None  # the file it was read from; None for text (which imports no files)

    def loc(self, path: Path_, key: bool = False) -> Location:
        """The position of a path; for a missing path, that of its nearest ancestor. A path that
        starts with an :class:`Imported` marker is a path into that imported file."""
        path = tuple(path)
        if path and isinstance(path[0], Imported):
            return path[0].doc.loc(path[1:], key)
        if key and path in self.key_pos:
            line, col = self.key_pos[path]
            return Location(self.file, line, col)
        while path not in self.value_pos and path:
            path = path[:-1]
        line, col = self.value_pos.get(path, (1, 1))
        return Location(self.file, line, col)


class Imported:
    """The first element of a document path into an imported file (see cnnspec.spec.imports): the blocks
    of several files expand together, and every path still finds its own file's positions."""

    __slots__ = ("doc",)

    def __init__(self, doc: Document):
        self.doc = doc


STDIN = "-"  # the path that means standard input
STDIN_NAME = "<stdin>"  # what messages call it


def read_stdin_text() -> str:
    """A spec from standard input, as strict UTF-8, at most MAX_FILE_BYTES."""
    import sys

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise UsageError("-: no standard input to read a spec from")
    try:
        raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"-: cannot read standard input: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UsageError(f"{STDIN_NAME}: more than {MAX_FILE_BYTES} bytes; a spec may be at most {MAX_FILE_BYTES} bytes")
    return decode_spec_bytes(raw, STDIN_NAME)


def read_spec_text(path: str | Path, file: str | None = None) -> str:
    """Read a file as strict UTF-8; any failure is a usage error or a located diagnostic (in
    ``file``, the name messages give it, where that is not the path)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise UsageError(f"{path}: is a directory, not a spec file")
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UsageError(f"{path}: file is {size} bytes; a spec may be at most {MAX_FILE_BYTES} bytes")
        with open(p, "rb") as fh:  # a pipe or device has no size to check: read one byte past the limit
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise UsageError(f"{path}: more than {MAX_FILE_BYTES} bytes; a spec may be at most {MAX_FILE_BYTES} bytes")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return decode_spec_bytes(raw, file or str(path))


def decode_spec_bytes(raw: bytes, file: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        _fail(file, 1, 1, "file is UTF-16; save it as UTF-8")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        _fail(file, line, col, f"file is not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded")
    if "\x00" in text:
        i = text.index("\x00")
        line = text.count("\n", 0, i) + 1
        _fail(file, line, i - (text.rfind("\n", 0, i) + 1) + 1, "file holds a NUL byte; is it a binary file?")
    return text


def _fail(file, line, col, message):
    raise SpecError([Diagnostic(message, Location(file, line, col), rank=0)])


def resolve_plain_scalar(text: str):
    """YAML 1.2 core schema, refusing what YAML 1.1 would read differently. Returns (value, problem)."""
    if text in _NULL:
        return None, None
    if text in _TRUE:
        return True, None
    if text in _FALSE:
        return False, None
    if text.lower() in _YAML11_BOOL:
        return None, (f"'{text}' is a boolean in YAML 1.1 but a string in YAML 1.2; "
                      f"write true or false, or quote it")
    if _INT.fullmatch(text):
        digits = text.lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            return None, f"number {text[:20]}{'...' if len(text) > 20 else ''} is too large (more than {MAX_INT_DIGITS} digits)"
        return int(text), None
    if _YAML11_NUMBER.fullmatch(text):
        return None, (f"'{text}' reads differently in YAML 1.1 and 1.2 (octal, hex, base 60 or "
                      f"underscores); write the number in plain decimal, or quote it")
    if _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            return None, f"number {text[:20]} is out of range"
        return value, None
    if _SPECIAL_FLOAT.fullmatch(text):
        return None, f"'{text}' is not a finite number"
    return text, None


def _is_a_name(path) -> bool:
    """Whether a value at ``path`` is a name, never a boolean: a layer's 'name', what 'in' names, a block's
    'inputs', a label in 'classes', a block parameter that names an op ('act: y' would name none)."""
    last = path[-1] if path else None
    parent = path[-2] if len(path) > 1 else None
    return last in ("name", "in") or (isinstance(last, int) and parent in ("in", "inputs", "classes"))


def _for_a_name(issue: str, text: str, path) -> str:
    """A YAML 1.1 boolean where a name belongs (``inputs: [x, y]``): the fix is to quote it, not true/false."""
    if _is_a_name(path) and text.lower() in _YAML11_BOOL:
        return (f"'{text}' is a boolean in YAML 1.1 but a string in YAML 1.2; as a name, quote it: "
                f"\"{text}\"")
    return issue


class _Builder:
    """Turns the event stream into data, recording positions; collects located problems."""

    def __init__(self, file: str):
        self.file = file
        self.doc = Document(file, None)
        self.problems: list[Diagnostic] = []
        self.anchors: dict[str, tuple[object, int]] = {}
        self.nodes = 0

    def problem(self, mark, message, rank=0):
        self.problems.append(Diagnostic(message, Location(self.file, mark.line + 1, mark.column + 1), rank=rank))

    def soft_problem(self, mark, message):
        """A problem in one value (tag, YAML 1.1 scalar, duplicate key): reported, parsing goes on so
        that the rest of the file is checked too; the value is kept as its text, never constructed."""
        self.doc.problems.append(Diagnostic(message, Location(self.file, mark.line + 1, mark.column + 1), rank=0))

    def build(self, text: str) -> Document:
        # stack entries: [container, path, pending_key, key_mark, anchor, size_before]
        stack: list[list] = []
        documents = 0
        root_set = False
        try:
            for event in yaml_events(text):
                if isinstance(event, yaml.DocumentStartEvent):
                    documents += 1
                    if documents > 1:
                        self.problem(event.start_mark, "expected one YAML document, found several ('---')")
                        break
                    continue
                if isinstance(event, (yaml.StreamStartEvent, yaml.StreamEndEvent, yaml.DocumentEndEvent)):
                    continue
                if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                    container, path, _k, _km, anchor, before = stack.pop()
                    if anchor:
                        self.anchors[anchor] = (container, self.nodes - before)
                    if not stack:
                        self.doc.data, root_set = container, True
                    continue

                # a key of a mapping?
                if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is _NO_KEY:
                    if not isinstance(event, yaml.ScalarEvent):
                        self.problem(event.start_mark, "a mapping key must be a plain name, not a list or mapping")
                        raise _Stop
                    key = event.value
                    top = stack[-1]
                    if key == "<<" and not event.style:
                        self.problem(event.start_mark, "merge keys ('<<') are not supported; use a block (see 'blocks')")
                        raise _Stop
                    if key in top[0] or (top[1] + (key,)) in self.doc.key_pos and key in top[0]:
                        first = self.doc.key_pos.get(top[1] + (key,))
                        where = f" (first at line {first[0]})" if first else ""
                        self.soft_problem(event.start_mark, f"duplicate key '{key}'{where}")
                        top[2], top[3] = _DUPLICATE, event.start_mark
                    else:
                        top[2], top[3] = key, event.start_mark
                        self.doc.key_pos[top[1] + (key,)] = (event.start_mark.line + 1, event.start_mark.column + 1)
                    continue

                path = self._child_path(stack)
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    self.problem(event.start_mark, f"document has more than {MAX_NODES} nodes (after expanding aliases)")
                    raise _Stop
                if isinstance(event, yaml.AliasEvent):
                    if event.anchor not in self.anchors:
                        self.problem(event.start_mark, f"alias '*{event.anchor}' refers to no complete anchor")
                        raise _Stop
                    value, size = self.anchors[event.anchor]
                    self.nodes += size
                    if self.nodes > MAX_NODES:
                        self.problem(event.start_mark, f"aliases expand to more than {MAX_NODES} nodes")
                        raise _Stop
                    self._record(path, event.start_mark)
                    root_set |= self._attach(stack, value)
                    continue
                tag = getattr(event, "tag", None)
                implicit = getattr(event, "implicit", True)
                explicit_tag = tag is not None and (isinstance(event, yaml.ScalarEvent) and not any(implicit)
                                                    or not isinstance(event, yaml.ScalarEvent) and not implicit)
                if explicit_tag:
                    self.soft_problem(event.start_mark, f"YAML tags such as '{tag}' are not allowed in a spec")
                self._record(path, event.start_mark)
                if isinstance(event, yaml.ScalarEvent):
                    if not event.style and not explicit_tag:
                        value, issue = resolve_plain_scalar(event.value)
                        if issue:
                            self.soft_problem(event.start_mark, _for_a_name(issue, event.value, path))
                            value = event.value
                    else:
                        value = event.value
                    if event.anchor:
                        self.anchors[event.anchor] = (value, 1)
                    root_set |= self._attach(stack, value)
                    continue
                if len(stack) >= MAX_DEPTH:
                    self.problem(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels")
                    raise _Stop
                container = {} if isinstance(event, yaml.MappingStartEvent) else []
                self._attach(stack, container)
                stack.append([container, path, _NO_KEY, None, event.anchor, self.nodes])
        except _Stop:
            pass
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = exc.problem or exc.context or "YAML syntax error"
            if mark is None:
                self.problems.append(Diagnostic(f"YAML syntax error: {message}", Location(self.file, 1, 1), rank=0))
            else:
                self.problem(mark, "YAML syntax error: " + explain_yaml_error(message, mark.line + 1, mark.column + 1,
                                                                              text))
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1
            col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
            self.problems.append(Diagnostic(
                f"character {exc.character!r} is not allowed in YAML", Location(self.file, line, col), rank=0))
        except yaml.YAMLError as exc:  # anything else PyYAML can raise
            self.problems.append(Diagnostic(f"YAML error: {exc}", Location(self.file, 1, 1), rank=0))
        if self.problems:
            raise SpecError(self.problems)
        if not root_set or self.doc.data is None:
            raise SpecError([Diagnostic("file is empty; a spec needs 'cnnspec', 'name', 'input' and 'layers'",
                                        Location(self.file, 1, 1), rank=0)])
        return self.doc

    def _child_path(self, stack):
        if not stack:
            return ()
        container, path, key, _km, _a, _b = stack[-1]
        if isinstance(container, dict):
            return path + (key,)
        return path + (len(container),)

    def _record(self, path, mark):
        self.doc.value_pos[path] = (mark.line + 1, mark.column + 1)

    def _attach(self, stack, value) -> bool:
        """Put a value into the open container; returns True when it became the document root."""
        if not stack:
            self.doc.data = value
            return True
        top = stack[-1]
        if isinstance(top[0], dict):
            if top[2] is not _DUPLICATE:
                top[0][top[2]] = value
            top[2] = _NO_KEY
        else:
            top[0].append(value)
        return False


def yaml_events(text: str):
    """PyYAML's event stream. libyaml's parser (no recursion; it refuses nesting past 1000 levels)
    is six times faster on a ResNet-50 spec; a file it rejects is parsed again in pure Python,
    whose error messages are the more helpful ones ("found character '\\t'...")."""
    if getattr(yaml, "__with_libyaml__", False):
        try:
            return list(yaml.parse(text, Loader=yaml.CSafeLoader))
        except yaml.YAMLError:
            pass
    return yaml.parse(text, Loader=yaml.SafeLoader)


class _Stop(Exception):
    pass


_NO_KEY = object()
_DUPLICATE = object()


def parse_yaml(text: str, file: str) -> Document:
    return _Builder(file).build(text)


def load_document(path: str | Path) -> Document:
    """A spec file's document; ``-`` reads standard input (named ``<stdin>``, importing relative to
    the working directory)."""
    if str(path) == STDIN:
        doc = parse_yaml(read_stdin_text(), STDIN_NAME)
        doc.origin = Path.cwd() / STDIN_NAME
        return doc
    doc = parse_yaml(read_spec_text(path), str(path))
    doc.origin = Path(path)
    return doc
