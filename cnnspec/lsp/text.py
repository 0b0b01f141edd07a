"""Positions: cnnspec's 1-based line and column (code points) to LSP's 0-based, UTF-16 positions,
and the extent of the YAML token (key or value) that starts at a position."""
from __future__ import annotations

from lsprotocol import types

_CLOSE = {"{": "}", "[": "]"}


class Lines:
    """A document's lines, split once; positions convert in both directions."""

    def __init__(self, text: str, encoding: str = "utf-16"):
        self.text = text
        self.lines = text.split("\n")
        self.encoding = encoding  # the negotiated position encoding: utf-16 (LSP's default), utf-8 or utf-32
        self._ascii: dict[int, bool] = {}  # line -> all ASCII (columns are code points then): asked once

    def _units(self, text: str) -> int:
        if self.encoding == "utf-32" or text.isascii():
            return len(text)
        if self.encoding == "utf-8":
            return len(text.encode("utf-8", "surrogatepass"))
        return len(text.encode("utf-16-le", "surrogatepass")) // 2

    def line(self, index: int) -> str:
        return self.lines[index] if 0 <= index < len(self.lines) else ""

    def utf16(self, line: int, col: int) -> int:
        """Code-point column -> the encoding's column on a 0-based line."""
        if self.encoding == "utf-32" or self.is_ascii(line):
            return col
        return self._units(self.line(line)[:col])

    def is_ascii(self, line: int) -> bool:
        found = self._ascii.get(line)
        if found is None:
            found = self._ascii[line] = self.line(line).isascii()
        return found

    def from_utf16(self, line: int, col16: int) -> int:
        """The encoding's column -> code-point column (inside a character rounds down)."""
        text = self.line(line)
        if self.encoding == "utf-32" or self.is_ascii(line):
            return min(col16, len(text))
        units = 0
        for i, ch in enumerate(text):
            units += self._units(ch)
            if units > col16:
                return i
        return len(text)

    def position(self, line: int, col: int) -> types.Position:
        """A 0-based code-point (line, col) as an LSP position."""
        return types.Position(line=max(line, 0), character=self.utf16(line, max(col, 0)))

    def token_end(self, line: int, col: int) -> int:
        """The code-point column where the token at 0-based (line, col) ends on that line: a quoted
        string to its closing quote, a flow collection to its closing bracket, a plain scalar or key to
        the ':', ',', ']', '}' or ' #' that ends it; at least one character past ``col``."""
        text = self.line(line)
        if col >= len(text):
            return col + 1 if col == len(text) and not text else max(col, len(text))
        first = text[col]
        if first in "\"'":
            i = col + 1
            while i < len(text):
                if text[i] == first:
                    if first == "'" and text[i + 1:i + 2] == "'":
                        i += 2
                        continue
                    return i + 1
                if first == '"' and text[i] == "\\":
                    i += 1
                i += 1
            return len(text)
        if first in _CLOSE:
            depth, quote = 0, None
            for i in range(col, len(text)):
                ch = text[i]
                if quote:
                    quote = None if ch == quote else quote
                elif ch in "\"'":
                    quote = ch
                elif ch in "{[":
                    depth += 1
                elif ch in "}]":
                    depth -= 1
                    if depth == 0:
                        return i + 1
            return len(text)
        if first == "-" and text[col + 1:col + 2] in (" ", ""):  # a block sequence item: the rest of the line
            return self.content_end(line)
        i = col
        while i < len(text):
            ch = text[i]
            if ch in ",]}" or (ch == ":" and text[i + 1:i + 2] in (" ", "")) or (ch == "#" and text[i - 1:i] in (" ", "\t")):
                break
            i += 1
        while i > col and text[i - 1] in " \t\r":  # no slice: a megabyte-long line stays linear
            i -= 1
        return max(i, col + 1)

    def token_range(self, line1: int, col1: int) -> types.Range:
        """The range of the token at a 1-based cnnspec location."""
        line, col = max(line1 - 1, 0), max(col1 - 1, 0)
        end = self.token_end(line, col)
        return types.Range(start=self.position(line, col), end=self.position(line, end))

    def content_end(self, line: int) -> int:
        text = self.line(line)
        end = len(text)
        while end and text[end - 1] in " \t\r":
            end -= 1
        return end

    def line_end(self, line: int) -> types.Position:
        """The end of a line's content, before trailing blanks."""
        return self.position(line, self.content_end(line))
