"""Publishing a set of files (:func:`staged_output`, for ``build``, ``train`` and ``run --save``):
the command writes into a staging folder beside the output folder; when every file is there, the
folder and the stage are swapped in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so any reader
resolving a path sees the old set or the new one, never a mix, whatever runs concurrently and
wherever the process is killed. See the README's "Output folders" for what readers may rely on, and
:class:`_Publication` for the fall-backs. One file at a time is :mod:`cnnspec.files.atomic`'s job.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import OutputError
from . import signals
from .atomic import current_umask, ensure_dir, os_reason, require_regular, sync_folder

try:
    import fcntl
except ImportError:  # not POSIX: stages are told apart by their process ids alone
    fcntl = None

STAGE_TAG = ".cnnspec-staging-"  # a sibling stage is '.<folder>.cnnspec-staging-<pid>-<random>'
ASIDE_TAG = ".cnnspec-old-"  # the previous set, moved aside where the folders cannot be exchanged
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "arm64": 276}  # where libc has no renameat2 wrapper
AT_FDCWD = -100
UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EPERM)  # renameat2 or its flag not available here
ASIDE_SET = "set"  # the old folder's name inside an aside folder


@contextmanager
def staged_output(outdir: str | Path, withdrawn: tuple[str, ...] = ()) -> Iterator[Path]:
    """A folder to write a command's files into; when the block ends without an error they are
    published in ``outdir`` as one set (all old or all new for every reader). On any error or
    ending signal nothing in ``outdir`` changes and the stage is removed, and so are the folders
    created for it.

    ``withdrawn``: names the command owns but may not write this time (``train``'s
    ``model.int8.onnx`` without ``--quantize``): an old file of that name left in ``outdir`` would
    sit beside the new set as if it belonged to it, so it goes with the old set unless the stage
    holds a new one."""
    pub = _Publication(Path(outdir), frozenset(withdrawn))
    try:
        with signals.deferred():
            pub.open()
        try:
            yield pub.stage
        except (BrokenPipeError, ConnectionError):
            raise  # stdout or stderr closed under the progress lines: not an output's fault
        except OSError as exc:  # a writer outside atomic_write (Keras' own save): still one line
            where = pub.published_name(exc.filename) if exc.filename else pub.display
            raise OutputError(where, f"cannot write the output files: {os_reason(exc)}") from None
        except OutputError as exc:
            raise pub.relocated(exc) from None
        with signals.deferred():
            pub.publish()
            sync_folder(pub.target.parent)  # the exchange (or the new folder) is on disk
            sync_folder(pub.target)
    finally:
        with signals.deferred():
            pub.close()


class _Publication:
    """One set of files on its way into an output folder.

    The usual way (``swap``): the stage is a hidden sibling of the folder, on the same
    filesystem; publishing links the folder's other entries (the user's own files) into the
    stage and exchanges the two folders in one ``renameat2(RENAME_EXCHANGE)``; the stage's name
    then holds the old set, which is removed. Where the folder does not exist yet it is the
    stage renamed (``RENAME_NOREPLACE``). Without renameat2 (not Linux, or a filesystem without
    exchange) the old folder is renamed aside and the stage renamed in: a reader may find no
    folder for that instant, but never a mixed one.

    Where the folder cannot be swapped (a mount point, the current directory or above it, a
    folder holding subfolders of its own, a parent that is not writable, files that cannot be
    hard-linked) the files are renamed into it one by one (each file is whole, the set is not
    swapped at once), and a warning says so and why.

    A stage is named with its process id and held with ``flock`` while alive; one left by a
    process killed with SIGKILL is removed by the next publication into the same folder.
    """

    def __init__(self, display: Path, withdrawn: frozenset[str] = frozenset()):
        self.display = display  # the name the user gave, for messages
        self.withdrawn = withdrawn  # the command's own names: never carried over from the old set
        self.target = Path(os.path.realpath(display))  # a link to a folder: publish where it points
        self.created: list[Path] = []  # folders made for this publication, removed if it fails
        self.stage: Path | None = None
        self.lock: int | None = None
        self.leftover: Path | None = None  # after publishing: the old set, or the stage, to remove
        self.in_place = ""  # why the folder is not swapped; "" when it is

    # -- before the command writes
    def open(self) -> None:
        _sweep(self.target)
        self.in_place = _cannot_swap(self.target)
        home = self.target if self.in_place else self.target.parent
        self._make_dirs(home)
        prefix = STAGE_TAG if self.in_place else f".{self.target.name}{STAGE_TAG}"
        try:
            self.stage = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=home))
            self.lock = _lock(self.stage)
        except OSError as exc:
            raise OutputError(self.display, f"cannot write the output files: {os_reason(exc)}") from None
        if self.in_place:
            _warn(f"{self.display}: {self.in_place}; its files are replaced one by one, not swapped as one set "
                  f"(give -o a folder of its own for that)")

    def _make_dirs(self, home: Path) -> None:
        missing = [home] + [p for p in home.parents if not p.exists()] if not home.exists() else []
        ensure_dir(home)
        self.created = missing  # deepest first

    def published_name(self, path) -> Path:
        """A staged file's path under the name it was going to be published as (others unchanged)."""
        try:
            return self.display / Path(os.path.abspath(path)).relative_to(os.path.abspath(self.stage))
        except (ValueError, TypeError):
            return Path(path)

    def relocated(self, exc: OutputError) -> OutputError:
        """An error about a staged file, told under the name it was going to be published as."""
        return exc.at(self.published_name(exc.path))

    # -- when every file is written
    def publish(self) -> None:
        names = sorted(p.name for p in self.stage.iterdir())
        for name in names:
            try:
                require_regular(self.target / name)
            except OutputError as exc:
                raise exc.at(self.display / name) from None
        try:
            if not self.in_place:
                self.in_place = self._swap(names)
            if self.in_place:
                self._rename_each(names)
        except OSError as exc:
            raise OutputError(self.display, f"cannot publish the output files: {os_reason(exc)}") from None

    def _swap(self, names: list[str]) -> str:
        """The stage becomes the folder; "" when done, else why it cannot (then: file by file)."""
        os.chmod(self.stage, _folder_mode(self.target))
        for _ in range(3):  # a concurrent publisher may create or remove the folder between two steps
            if _rename2(self.stage, self.target, RENAME_NOREPLACE):
                self.created = []
                return ""
            _sweep(self.target)
            why = _carry_over(self.target, self.stage, set(names) | self.withdrawn)
            if why:
                _warn(f"{self.display}: {why}; its files are replaced one by one, not swapped as one set")
                return why
            exchanged = _rename2(self.stage, self.target, RENAME_EXCHANGE)
            if exchanged:
                self.leftover, self.created = self.stage, []  # the stage's name now holds the old set
                return ""
            if exchanged is False:
                self._set_aside_and_rename()
                return ""
        raise OSError(errno.EAGAIN, "the folder keeps changing under concurrent publishers", str(self.target))

    def _set_aside_and_rename(self) -> None:
        """Without an exchange: the old folder renamed aside, then the stage in; a reader may find
        no folder for that instant, never a mixed one (a kill in between: the next run restores it)."""
        aside = Path(tempfile.mkdtemp(prefix=f".{self.target.name}{ASIDE_TAG}{os.getpid()}-", dir=self.target.parent))
        self.leftover = aside
        os.rename(self.target, aside / ASIDE_SET)
        try:
            os.rename(self.stage, self.target)
        except OSError:
            _restore(aside / ASIDE_SET, self.target)  # never remove the only copy of the old set
            raise
        self.created = []

    def _rename_each(self, names: list[str]) -> None:
        for name in names:
            os.replace(self.stage / name, self.target / name)
        for name in self.withdrawn - set(names):
            stale = self.target / name
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
        self.created = []

    # -- always
    def close(self) -> None:
        for path in (self.leftover, self.stage):
            if path is not None and path.exists() and path != self.target:
                shutil.rmtree(path, ignore_errors=True)
        if self.lock is not None:
            os.close(self.lock)
        for folder in self.created:  # a failure leaves no empty folder behind
            try:
                folder.rmdir()
            except OSError:
                break


def _cannot_swap(target: Path) -> str:
    """Why ``target`` cannot be exchanged as a whole ("" when it can)."""
    if not target.exists():
        return ""
    cwd = Path(os.path.realpath(os.getcwd()))
    reasons = [
        (lambda: os.path.ismount(target), "it is a mount point"),
        (lambda: cwd == target or target in cwd.parents, "it is the current directory or holds it"),
        (lambda: _subfolder(target), f"it holds folders of its own ({_subfolder(target)}/)"),
        (lambda: not os.access(target.parent, os.W_OK | os.X_OK), f"its parent {target.parent} is not writable"),
    ]
    return next((why for test, why in reasons if test()), "")


def _subfolder(folder: Path) -> str:
    """The first subfolder that is not a staging folder of cnnspec's; "" when there is none."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return ""
    return next((e.name for e in entries if e.is_dir(follow_symlinks=False)), "")


def _carry_over(target: Path, stage: Path, names: set[str]) -> str:
    """Hard-link the folder's other entries (the user's files) into the stage, so the swap keeps
    them; why it cannot ("" when done)."""
    try:
        entries = list(os.scandir(target))
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"it cannot be listed ({os_reason(exc)})"
    for entry in entries:
        if entry.name in names:
            continue
        if entry.is_dir(follow_symlinks=False):  # a live stage of a file-by-file publisher too
            return f"it holds folders of its own ({entry.name}/)"
        try:
            os.link(entry.path, stage / entry.name, follow_symlinks=False)
        except (FileNotFoundError, FileExistsError):
            continue  # removed meanwhile (in neither set), or linked by an earlier try
        except OSError as exc:
            return f"its file {entry.name} cannot be hard-linked ({os_reason(exc)})"
    return ""


def _folder_mode(target: Path) -> int:
    """The mode the published folder keeps: the old folder's, or a new folder's under the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o777 & ~current_umask()


def _renameat2():
    """libc's renameat2, or the raw system call where libc lacks the wrapper; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import platform

    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "renameat2"):
        return libc.renameat2
    number = SYS_RENAMEAT2.get(platform.machine())
    return None if number is None else (lambda *args: libc.syscall(number, *args))


def _rename2(source: Path, target: Path, flag: int) -> bool | None:
    """Rename with a renameat2 flag. NOREPLACE: True, or False where the folder exists. EXCHANGE:
    True, None where the folder has gone meanwhile, False where this system or filesystem cannot
    exchange (the caller renames aside instead)."""
    call = _renameat2()
    if call is not None:
        import ctypes

        if call(AT_FDCWD, os.fsencode(source), AT_FDCWD, os.fsencode(target), flag) == 0:
            return True
        code = ctypes.get_errno()
        if code not in UNSUPPORTED:
            return _rename_failed(code, target, flag)
    if flag == RENAME_EXCHANGE:
        return False
    try:
        os.rename(source, target)  # fails on a non-empty folder; replaces an empty one
        return True
    except OSError as exc:
        return _rename_failed(exc.errno, target, flag)


def _rename_failed(code: int, target: Path, flag: int) -> bool | None:
    """The answer a failed rename gives (see _rename2), or the OSError it is."""
    if flag == RENAME_NOREPLACE and code in (errno.EEXIST, errno.ENOTEMPTY):
        return False
    if flag == RENAME_EXCHANGE and code == errno.ENOENT and not target.exists():
        return None
    raise OSError(code, os.strerror(code), str(target))


def _lock(folder: Path) -> int | None:
    """An flock held on the stage while this process lives: how a sweep tells live from dead."""
    if fcntl is None:
        return None
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _sweep(target: Path) -> None:
    """Remove stages and old sets left by killed processes: beside the folder and inside it.
    One is dead when its process is gone and nobody holds its lock (another container's
    process, whose pid means nothing here, still holds the lock)."""
    places = [(target.parent, f".{target.name}{STAGE_TAG}"), (target.parent, f".{target.name}{ASIDE_TAG}"),
              (target, STAGE_TAG)]
    for folder, prefix in places:
        try:
            candidates = [e for e in os.scandir(folder) if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for entry in candidates:
            if _is_dead(Path(entry.path), entry.name[len(prefix):]):
                if prefix.endswith(ASIDE_TAG) and not target.exists():
                    _restore(Path(entry.path) / ASIDE_SET, target)
                shutil.rmtree(entry.path, ignore_errors=True)


def _restore(old: Path, target: Path) -> None:
    """A process killed between renaming the old folder aside and the new one in: put it back."""
    try:
        os.rename(old, target)
    except OSError:
        pass


def _is_dead(path: Path, tail: str) -> bool:
    pid = tail.partition("-")[0]
    if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
        return False
    if fcntl is None:
        return pid.isdigit()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _warn(message: str) -> None:
    print(f"cnnspec: warning: {message}", file=sys.stderr)
