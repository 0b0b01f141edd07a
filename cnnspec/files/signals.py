"""Signals that end the process become exceptions, so cleanup runs for every one of them.

By default SIGTERM (what ``kill`` and ``timeout`` send) and SIGHUP (a closed terminal) end Python
at once, skipping every ``finally``: a build stopped that way left its staging folder behind.
While :func:`handling` is active they raise :class:`~cnnspec.errors.Terminated` (SIGINT raises
``KeyboardInterrupt``, as Python's own handler does), and inside :func:`deferred` (the few
steps that must finish once begun: publishing a set, removing a staging folder) a signal is
held until the block ends. SIGXFSZ is ignored, so a file-size limit (``ulimit -f``) is an
``EFBIG`` error naming the file, not a core dump.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from ..errors import Terminated

# None: KeyboardInterrupt. SIGHUP and SIGXFSZ are POSIX only.
ENDING = {sig: kind for sig, kind in ((signal.SIGTERM, Terminated), (getattr(signal, "SIGHUP", None), Terminated),
                                      (signal.SIGINT, None)) if sig is not None}
IGNORED = tuple(s for s in (getattr(signal, "SIGXFSZ", None),) if s is not None)

_state = threading.local()
_pending: list[int] = []


def _depth() -> int:
    return getattr(_state, "depth", 0)


def _raise_for(signum: int):
    if ENDING.get(signum) is None:
        raise KeyboardInterrupt
    raise Terminated(signum)


def _handler(signum, _frame):
    """Raise now, or hold the signal while a deferred block runs (handlers run in the main thread)."""
    if _depth():
        _pending.append(signum)
        return
    _raise_for(signum)


@contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for the block (the CLI's lifetime); the previous ones come back after.
    Outside the main thread nothing is installed (Python allows handlers only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (*ENDING, *IGNORED)}
    for sig in ENDING:
        signal.signal(sig, _handler)
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold ending signals until the block ends, then raise the first of them: a step begun here
    (a rename, a cleanup) is finished before the process goes."""
    _state.depth = _depth() + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _state.depth and _pending and threading.current_thread() is threading.main_thread():
            signum = _pending[0]
            _pending.clear()
            _raise_for(signum)


def end_by(signum: int) -> int:
    """End the process by ``signum`` with its default action, so the parent sees what stopped it
    (``timeout`` and shells read that); the exit code 128 + signum where the signal does not end it."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    return 128 + signum
