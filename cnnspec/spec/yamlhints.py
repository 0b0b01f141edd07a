"""PyYAML's syntax errors as the likely fix, in plain words.

PyYAML says what its parser expected ("expected <block end>, but found '-'", "mapping values are
not allowed here"); a spec's author needs to know what to change. One small function per common
slip (a tab, a missing space after ':' or '-', a list item or a key at the wrong depth), tried in
order on the error and the text around it; anything else keeps PyYAML's wording. The location is
PyYAML's, unchanged; a message names another line where the slip sits elsewhere.
"""
from __future__ import annotations

import re
from typing import Callable

# 'key:value' with no space after the colon (not a URL's '://', not inside quotes or a flow value's
# braces, where PyYAML reads it as one plain scalar anyway)
_NO_SPACE_AFTER_COLON = re.compile(r"^\s*(?:-\s+)?([A-Za-z_][\w.-]*):([^\s/:][^#]*?)\s*(?:#.*)?$")
_NO_SPACE_AFTER_DASH = re.compile(r"^(\s*)-([A-Za-z_{\[][^#]*?)\s*(?:#.*)?$")
_LOOK_BACK = 6  # lines above the error searched for the slip


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _item_column(line: str) -> int | None:
    """1-based column of a line's '-' when it is a list item."""
    stripped = line.lstrip(" ")
    return _indent(line) + 1 if stripped.startswith("- ") or stripped == "-" else None


def _lines_above(lines: list[str], line: int):
    """(1-based number, text) of the lines above ``line`` (1-based), nearest first, blanks and comments skipped."""
    for n in range(min(line - 1, len(lines)), 0, -1):
        if lines[n - 1].strip() and not lines[n - 1].lstrip().startswith("#"):
            yield n, lines[n - 1]


def _tab(problem: str, line: int, column: int, lines: list[str]) -> str | None:
    if "'\\t'" not in problem:
        return None
    return "a tab here; YAML indents with spaces only: replace the tab with spaces"


def _missing_space(problem: str, line: int, column: int, lines: list[str]) -> str | None:
    if problem not in ("mapping values are not allowed here", "could not find expected ':'"):
        return None
    candidates = [(line, lines[line - 1])] if 0 < line <= len(lines) else []
    candidates += list(_lines_above(lines, line))[:_LOOK_BACK]
    for n, text in candidates:
        where = "" if n == line else f" (line {n})"
        dash = _NO_SPACE_AFTER_DASH.match(text)
        if dash:
            return (f"missing space after '-' in '-{dash.group(2)}'{where}: a list item is '- {dash.group(2)}'")
        colon = _NO_SPACE_AFTER_COLON.match(text)
        if colon and not colon.group(2).startswith(("'", '"')):
            key, value = colon.group(1), colon.group(2)
            return f"missing space after ':' in '{key}:{value}'{where}: write '{key}: {value}'"
    return None


def _deeper_key(problem: str, line: int, column: int, lines: list[str]) -> str | None:
    if problem != "mapping values are not allowed here" or not 0 < line <= len(lines):
        return None
    above = next(iter(_lines_above(lines, line)), None)
    text = lines[line - 1]
    if above is None or _indent(text) <= _indent(above[1]) or above[1].rstrip().endswith(":"):
        return None
    key, above_key = (t.strip().removeprefix("- ").split(":", 1)[0] for t in (text, above[1]))
    return (f"'{key}' is indented deeper than '{above_key}' above it, which already has a value: "
            f"line them up (the same number of spaces)")


def _colon_in_value(problem: str, line: int, column: int, lines: list[str]) -> str | None:
    if problem != "mapping values are not allowed here":
        return None
    return ("a ':' where no key can start: a missing space after ':' on a line above, or a value holding "
            "': ' that needs quotes")


def _list_item_depth(problem: str, line: int, column: int, lines: list[str]) -> str | None:
    if not problem.startswith("expected <block end>, but found") or not problem.endswith(
            ("'-'", "'<block sequence start>'")):
        return None
    above = next((_item_column(text) for _, text in _lines_above(lines, line) if _item_column(text)), None)
    if above is not None and above != column:
        return (f"a list item at the wrong depth: its '-' is at column {column}, the item above at column {above}; "
                f"line them up (the same number of spaces)")
    return "a list item at the wrong depth: line its '-' up with the items of its list"


def _key_depth(problem: str, line: int, column: int, lines: list[str]) -> str | None:
    if not problem.startswith("expected <block end>, but found") or not problem.endswith(
            ("'<block mapping start>'", "'?'")):
        return None
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    key = text.split(":", 1)[0] if ":" in text else text
    above = next(((n, t) for n, t in _lines_above(lines, line)), None)
    if above is not None and _item_column(above[1]) is not None and _item_column(above[1]) >= column:
        return (f"'{key}' is at the depth of the list above it, so it ends the list: start it with '- ' for "
                f"a new list item, or indent it under its item")
    return (f"'{key}' is at the wrong depth: indent it exactly as the other keys of its mapping "
            f"(the same number of spaces)")


# tried in order; the first that recognises the error speaks
HINTS: tuple[Callable[[str, int, int, list[str]], str | None], ...] = (
    _tab, _missing_space, _deeper_key, _colon_in_value, _list_item_depth, _key_depth)


def explain_yaml_error(problem: str, line: int, column: int, text: str) -> str:
    """The message for a PyYAML syntax error at ``line``:``column`` (1-based): a likely fix in plain
    words where the slip is a common one, else PyYAML's own ``problem``."""
    lines = text.splitlines()
    for hint in HINTS:
        said = hint(problem, line, column, lines)
        if said:
            return said
    return problem
