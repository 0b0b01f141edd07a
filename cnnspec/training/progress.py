"""The per-epoch progress bar on stderr; tqdm is optional, and without it the loop prints lines."""
from __future__ import annotations

import importlib.util
import sys


_OPEN: set = set()  # bars not closed yet: Ctrl-C ends their line before its message (close_open_bars)


class EpochBar:
    """A tqdm bar on stderr for one epoch, or nothing (``--quiet``, or a rank other than 0)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, unit="batch", file=sys.stderr, leave=True,
                                 dynamic_ncols=True, mininterval=0.2)
                _OPEN.add(self)

    def update(self, loss: float, accuracy: float) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n == self._bar.total or self._bar.n % 10 == 0:
                self._bar.set_postfix_str(f"loss {loss:.4f} acc {accuracy:.4f}", refresh=False)

    def close(self, summary: str = "") -> None:
        _OPEN.discard(self)
        if self._bar is not None:
            if summary:
                self._bar.set_postfix_str(summary, refresh=False)
            self._bar.close()


def close_open_bars() -> None:
    """End every open bar's line (an interrupted epoch's), so what is printed next starts a line."""
    for bar in list(_OPEN):
        bar.close()


def has_tqdm() -> bool:
    """Whether bars can be shown at all (else each epoch's summary is printed as a line)."""
    return importlib.util.find_spec("tqdm") is not None
