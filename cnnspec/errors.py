"""One error hierarchy for the whole tool; each exception carries its exit code (as click does).

A spec can hold many problems at once, so checks yield :class:`Diagnostic` objects and the engine
collects them; :class:`SpecError` carries the collected list to the command line.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a node sits in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7f]} | {0x0a: "\\n", 0x0d: "\\r", 0x09: "\\t"}


def one_line(text: str) -> str:
    """Control characters (newlines included) escaped, so an error is always one line."""
    return text.translate(_CONTROL)


def plural(n: int | float, word: str, many: str | None = None) -> str:
    """'1 epoch', '3 epochs', '0.5 epochs' (``many`` where adding 's' is wrong): every count a message says."""
    count = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{count} {word}" if n == 1 else f"{count} {many or word + 's'}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a spec: what is wrong, where, and the chain of block calls that led there."""

    message: str
    location: Location | None = None
    # outermost call last: (block name, location of the call)
    via: tuple[tuple[str, Location], ...] = ()
    # lower sorts first when several errors are shown ("best first")
    rank: int = 50
    severity: str = "error"  # or "warning" (cnnspec.graph.lint): reported, but the spec still checks
    # the name prefix of the innermost block call ('layer1.0.'), which tells one call from another
    call: str = ""
    # how many calls reach this same error in a block's text (said once: see compiler.said_once)
    calls: int = 1

    def render(self) -> str:
        """One line, whatever the spec holds: names echoed from it may carry newlines or other control
        characters (``in: "a\\nb"``), which are shown escaped."""
        where = str(self.location) if self.location else "<spec>"
        return one_line(f"{where}: {self.severity}: {self.message}{self._context()}")

    def _context(self) -> str:
        """Which block call led here: every call of the chain, or for an error many calls reach, how many."""
        if self.calls > 1:
            block, first = self.via[0]
            return f" (in block '{block}', reached by {plural(self.calls, 'call')}, first at {self.line_of(first)})"
        return "".join(f" (in block '{block}' called at {self.line_of(call)})" for block, call in self.via)

    def line_of(self, other: Location) -> str:
        """'line 12' in this error's own file; 'net.yaml:12' in another (a block imported from a file)."""
        if self.location is None or other.file == self.location.file:
            return f"line {other.line}"
        return f"{other.file}:{other.line}"

    def to_json(self, spec_file: str | None = None) -> dict:
        """The contract's line, column and message; and ``file`` where that is not ``spec_file``
        (an error in a file the spec imports), so the line is not read as the spec's."""
        doc = {
            "line": self.location.line if self.location else None,
            "column": self.location.column if self.location else None,
            "message": self.message,
        }
        if spec_file is not None and self.location is not None and self.location.file != str(spec_file):
            doc["file"] = self.location.file
        return doc


class CnnspecError(Exception):
    """Base of every error cnnspec raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code = 1

    def render(self) -> str:
        return f"error: {self}"


class UsageError(CnnspecError):
    """Bad command line, missing file, unreadable input: the user's invocation is at fault."""

    exit_code = 2


class InputError(UsageError):
    """A data, weights, model or image file that cannot be used; says which file and why."""


class OutputError(UsageError):
    """An output that cannot be written: one line naming the path the user asked for, what was
    being written and why (the OS's words). ``path`` is kept so a file written in a staging
    folder can be reported under the name it was going to be published as."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")

    def at(self, path) -> "OutputError":
        return OutputError(path, self.reason)


class BackendUnavailable(UsageError):
    """A backend or device was asked for that is not installed or not present."""


class SpecError(CnnspecError):
    """A spec failed validation; holds every diagnostic found, best first."""

    exit_code = 1

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]):
        self.diagnostics = tuple(sort_diagnostics(diagnostics))
        super().__init__(self.diagnostics[0].render() if self.diagnostics else "invalid spec")

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


def sort_diagnostics(diagnostics) -> list[Diagnostic]:
    """Best first: structural problems before shape problems, then in file order."""

    def key(d: Diagnostic):
        loc = d.location
        return (d.rank, loc.line if loc else 0, loc.column if loc else 0, d.message)

    seen, out = set(), []
    for d in sorted(diagnostics, key=key):
        if d.render() not in seen:
            seen.add(d.render())
            out.append(d)
    return out


class Terminated(BaseException):
    """A signal that ends the process (SIGTERM, SIGHUP) raised as an exception, so that every
    ``finally`` runs and no staging file is left behind; not an ``Exception``, so no handler
    meant for errors swallows it. The CLI ends the process by the same signal afterwards."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signum)


class Interrupted(CnnspecError):
    """Ctrl-C during a command that can carry on (training): says what was kept and the command that
    carries on, on its own line; exit code 130, as a shell gives for SIGINT."""

    exit_code = 130

    def render(self) -> str:
        return f"cnnspec: interrupted {self}".rstrip()


class LoweringMissing(CnnspecError):
    """A target (torch, keras, onnx, or a generated file) has no lowering for an op the core knows.

    One type for every target, so a new op that is not yet lowered everywhere fails the same way
    wherever it is used first; the completeness test walks ``cnnspec.graph.ops.OPS`` against every table.
    """

    exit_code = 1

    def __init__(self, op: str, target: str, layer: str | None = None):
        self.op, self.target, self.layer = op, target, layer
        where = f" (layer '{layer}')" if layer else ""
        super().__init__(f"the {target} target has no lowering for op '{op}'{where}")


class QuantizationRefused(CnnspecError):
    """``cnnspec quantize``: the int8 model loses more than ``--max-drop`` allows; nothing is written.
    ``reason`` is the judgement alone, for callers (``train --quantize``) that say what follows."""

    exit_code = 1

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message
