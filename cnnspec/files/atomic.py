"""Writing outputs so that no reader ever sees a half-done file or a mixed set of files.

One file (:func:`atomic_write_bytes`): written to a temp file beside it, flushed to disk, then
renamed over the old one; only a regular file (or nothing) may stand at the target: a directory,
a device such as ``/dev/null``, a FIFO or a socket is refused, never replaced. Every OS error
(no space, permission, read-only, file-size limit) is one :class:`OutputError` line naming the
path and what was being written, with the temp file removed.

A set of files published together is :mod:`cnnspec.files.publish`'s job.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from ..errors import OutputError, UsageError
from . import signals

# what a file is, by its suffix: the words of "cannot write the ONNX model: ..."
WHAT = {".onnx": "the ONNX model", ".safetensors": "the weights", ".py": "the model code",
        ".keras": "the Keras model", ".json": "the metrics", ".png": "the training curves"}
# what stands at a target that is not a regular file
NOT_REGULAR = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}


def describe(path: str | Path) -> str:
    """What a file is, for an error line ("the ONNX model"), from its suffix."""
    return WHAT.get(Path(path).suffix.lower(), "the file")


def os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def ensure_dir(path: str | Path) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{path}: exists and is not a directory") from None
    except OSError as exc:
        raise OutputError(path, f"cannot create directory: {os_reason(exc)}") from None
    return p


def check_can_create_dir(path: str | Path, names=()) -> Path:
    """Fail now, before a long job, where ``path`` could not become an output folder later, or
    where one of the output ``names`` in it is not a regular file; create nothing (a job that
    fails early leaves no empty folder behind)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{path}: exists and is not a directory")
        probe = p
        for name in names:
            require_regular(p / name)
    else:
        probe = next((a for a in p.absolute().parents if a.exists()), Path("/"))
        if not probe.is_dir():
            raise UsageError(f"{path}: cannot create directory: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot create or write: {probe} is not writable")
    return p


def require_regular(path: str | Path) -> None:
    """Outputs are regular files: refuse a target that is anything else (a folder, /dev/null, a
    FIFO), which renaming over would destroy or writing into would hang; a link is followed."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise OutputError(path, f"cannot write {describe(path)}: {os_reason(exc)}") from None
    if not stat.S_ISREG(mode):
        kind = NOT_REGULAR.get(stat.S_IFMT(mode), "not a regular file")
        raise OutputError(path, f"is {kind}; cnnspec writes its outputs only as regular files and "
                                f"replaces nothing else")


def atomic_write_bytes(path: str | Path, data: bytes, what: str | None = None) -> None:
    """``data`` at ``path`` in one step: a temp file beside it, synced, renamed over it."""
    p = Path(path)
    what = what or describe(p)
    require_regular(p)
    ensure_dir(p.parent if str(p.parent) else ".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the new bytes are on disk before the name points at them
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs follow the umask like any file
        os.replace(tmp, p)
        sync_folder(p.parent if str(p.parent) else Path("."))  # the new name survives a power cut too
    except OSError as exc:
        _discard(tmp)
        raise OutputError(p, f"cannot write {what}: {os_reason(exc)}") from None
    except BaseException:
        _discard(tmp)
        raise


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a rename in it is on disk, not only in the page cache. Best effort: some
    filesystems (and every non-POSIX system) cannot open or sync a folder, and the rename stands."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str, what: str | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), what)


def _discard(tmp) -> None:
    if tmp is not None:
        with signals.deferred():
            try:
                os.unlink(tmp)
            except OSError:
                pass


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

