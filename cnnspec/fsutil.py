"""Writing output without leaving anything half-written: temp file in the same folder, then rename;
and for a command that writes several files, a staging folder published only when all are done."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UsageError


def ensure_dir(path: str | Path) -> Path:
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{path}: exists and is not a directory") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot create directory: {exc.strerror or exc}") from None
    return p


def check_can_create_dir(path: str | Path) -> Path:
    """Fail now, before a long job, where ``path`` could not become an output folder later; create
    nothing (a job that fails early leaves no empty folder behind)."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise UsageError(f"{path}: exists and is not a directory")
        probe = p
    else:
        probe = next((a for a in p.absolute().parents if a.exists()), Path("/"))
        if not probe.is_dir():
            raise UsageError(f"{path}: cannot create directory: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot create or write: {probe} is not writable")
    return p


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    p = Path(path)
    ensure_dir(p.parent if str(p.parent) else ".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise UsageError(f"{p.parent}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs follow the umask like any file
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def staged_output(outdir: str | Path) -> Iterator[Path]:
    """A hidden folder inside ``outdir`` to write a command's files into. Only when the block ends
    without an error are they moved into ``outdir`` (renames on one filesystem); on any error,
    Ctrl-C included, the folder is removed and ``outdir`` keeps what it had, so a failed build
    never leaves new weights beside an old model."""
    out = ensure_dir(outdir)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".cnnspec-staging-", dir=out))
    except OSError as exc:
        raise UsageError(f"{out}: cannot write: {exc.strerror or exc}") from None
    try:
        yield stage
        for item in sorted(stage.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
