"""File suffix -> writer: one entry per format ``cnnspec draw`` writes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .diagram import Diagram


def _dot(d: Diagram, path: Path, title: str) -> None:
    from .dot import to_dot

    path.write_text(to_dot(d), encoding="utf-8")


def _svg(d: Diagram, path: Path, title: str) -> None:
    from .layout import place
    from .svg import to_svg

    path.write_text(to_svg(place(d)), encoding="utf-8")


def _png(d: Diagram, path: Path, title: str) -> None:
    from .layout import place
    from .png import _matplotlib, write_png

    _matplotlib()  # say what is missing before laying out
    write_png(place(d), path)


def _html(d: Diagram, path: Path, title: str) -> None:
    from .html import to_html
    from .layout import place

    path.write_text(to_html(d, place(d), title), encoding="utf-8")


@dataclass(frozen=True)
class Format:
    write: Callable[[Diagram, Path, str], None]
    needs: str  # what it needs beyond the core, for the help text


FORMATS: dict[str, Format] = {
    ".dot": Format(_dot, "nothing"),
    ".svg": Format(_svg, "grandalf"),
    ".png": Format(_png, "grandalf, matplotlib"),
    ".html": Format(_html, "grandalf"),
}
