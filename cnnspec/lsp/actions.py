"""Quick fixes from ``check``'s "did you mean" suggestions (cnnspec.spec.suggestions): the misspelt
word in the diagnostic's range is replaced by the suggestion (``rleu`` -> ``relu``)."""
from __future__ import annotations

import re

from lsprotocol import types

from .diagnostics import SOURCE
from .text import Lines

_SUGGESTION = re.compile(r"did you mean '([^']+)'\?")
_QUOTED = re.compile(r"'([^']+)'")


def _word_range(lines: Lines, rng: types.Range, message: str, fix: str) -> tuple[types.Range, str] | None:
    """Where the misspelt word is: the quoted names in the message, first found inside the range."""
    if rng.start.line != rng.end.line:
        return None
    line = rng.start.line
    start, end = lines.from_utf16(line, rng.start.character), lines.from_utf16(line, rng.end.character)
    text = lines.line(line)[start:end]
    for word in _QUOTED.findall(message.split("did you mean")[0]):
        if word == fix:
            continue
        found = re.search(r"(?<![A-Za-z0-9_.\-])" + re.escape(word) + r"(?![A-Za-z0-9_.\-])", text)
        if found:
            a, b = start + found.start(), start + found.end()
            return types.Range(start=lines.position(line, a), end=lines.position(line, b)), word
    return None


def quick_fixes(uri: str, lines: Lines, diagnostics: list[types.Diagnostic]) -> list[types.CodeAction]:
    out = []
    for d in diagnostics:
        if d.source not in (SOURCE, None):
            continue
        fix = _SUGGESTION.search(d.message)
        if not fix:
            continue
        where = _word_range(lines, d.range, d.message, fix.group(1))
        if where is None:
            continue
        rng, word = where
        out.append(types.CodeAction(
            title=f"Change '{word}' to '{fix.group(1)}'", kind=types.CodeActionKind.QuickFix, diagnostics=[d],
            is_preferred=True,
            edit=types.WorkspaceEdit(changes={uri: [types.TextEdit(range=rng, new_text=fix.group(1))]})))
    return out
