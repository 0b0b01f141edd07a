"""``check``'s errors and warnings as LSP diagnostics: one per error, at its line and column, its range
covering the offending key or value. An error in another file (an imported block) is shown at the call
that reaches it, with related information linking the two, and in that file where it is open. An error
in a block of the same file stays at the block's text (linked to the calls) and is repeated at the
call as information, so the errors and warnings stay exactly ``check``'s."""
from __future__ import annotations

from typing import Callable

from lsprotocol import types

from ..errors import Diagnostic, Location
from .analysis import Analysis, check_line
from .text import Lines

SOURCE = "cnnspec"
_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}

LinesOf = Callable[[str], "Lines | None"]  # file name -> its lines (open text, or read from disk), None if unreadable
UriOf = Callable[[str], str]  # file name -> URI


def _range(lines: Lines | None, loc: Location | None) -> types.Range:
    if loc is None or lines is None:
        return types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=1))
    return lines.token_range(loc.line, loc.column)


def _call_in(a: Analysis, d: Diagnostic) -> Location | None:
    """The outermost call in this document that leads to an error elsewhere; else its 'import' key."""
    for _block, call in reversed(d.via):
        if call.file == a.file:
            return call
    if a.doc is not None and isinstance(a.doc.data, dict) and "import" in a.doc.data:
        return a.doc.loc(("import",), key=True)
    return None


def to_lsp(a: Analysis, lines_of: LinesOf, uri_of: UriOf) -> dict[str, list[types.Diagnostic]]:
    """File name -> its LSP diagnostics, from one document's check; this document's own file is
    always a key (with an empty list where it checks clean)."""
    out: dict[str, list[types.Diagnostic]] = {a.file: []}
    for d in a.diagnostics:
        message, severity = check_line(d), _SEVERITY.get(d.severity, types.DiagnosticSeverity.Error)
        related = [types.DiagnosticRelatedInformation(
            location=types.Location(uri=uri_of(call.file), range=_range(lines_of(call.file), call)),
            message=f"block '{block}' called here") for block, call in d.via]
        where = d.location
        if where is None or where.file == a.file:
            rng = _range(a.lines, where)
            related = [r for r in related if r.location.uri != uri_of(a.file) or r.location.range != rng]
            out[a.file].append(types.Diagnostic(range=rng, message=message, severity=severity,
                                                source=SOURCE, related_information=related or None))
            call = d.via[-1][1] if d.via else None
            if call is not None and call.file == a.file and where is not None:  # and, as information, at the call
                here = types.Location(uri=uri_of(a.file), range=rng)
                out[a.file].append(types.Diagnostic(
                    range=_range(a.lines, call), message=message, severity=types.DiagnosticSeverity.Information,
                    source=SOURCE, related_information=[
                        types.DiagnosticRelatedInformation(location=here, message=f"the {d.severity} is here")]))
            continue
        # in an imported file: at the call here, linked to the place there; and there, linked back
        there = types.Location(uri=uri_of(where.file), range=_range(lines_of(where.file), where))
        call = _call_in(a, d)
        out[a.file].append(types.Diagnostic(
            range=_range(a.lines, call), message=message, severity=severity, source=SOURCE,
            related_information=[types.DiagnosticRelatedInformation(location=there, message="the error is here")]
            + related))
        out.setdefault(where.file, []).append(types.Diagnostic(
            range=there.range, message=message, severity=severity, source=SOURCE,
            related_information=related or None))
    return out
