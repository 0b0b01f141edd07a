"""Hostile corpus for outputs (issue 13): what stands at an output's path, OS errors, and a
published set under concurrent builds and signals at every step. A reader sees the old set or the
new one, never a mix; a failure changes nothing; a stage never outlives SIGTERM."""
import errno
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cnnspec.errors import OutputError
from cnnspec.files import atomic as fsutil
from cnnspec.files import publish
from cnnspec.files.atomic import atomic_write_bytes
from cnnspec.files.publish import staged_output

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")]), "OMP_NUM_THREADS": "1"}
SPEC = """cnnspec: 1
name: pub
input: [1, 16, 16]
layers:
  - conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}
  - flatten
  - dense: 64
  - dense: 10
"""
LEFTOVER_TAGS = (publish.STAGE_TAG, publish.ASIDE_TAG)


# ---------------------------------------------------------------- what stands at the target

def _fifo(path):
    os.mkfifo(path)


def _socket(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


def _link_to_dir(path):
    (path.parent / "real").mkdir()
    path.symlink_to(path.parent / "real")


def _link_to_null(path):
    path.symlink_to("/dev/null")


NOT_REGULAR = [
    # (id, how to make it at the target, the words of the refusal)
    ("directory", lambda p: p.mkdir(), "is a directory"),
    ("fifo", _fifo, "is a FIFO (named pipe)"),
    ("socket", _socket, "is a socket"),
    ("link-to-directory", _link_to_dir, "is a directory"),
    ("link-to-dev-null", _link_to_null, "is a character device"),
]


@pytest.mark.parametrize("make,words", [c[1:] for c in NOT_REGULAR], ids=[c[0] for c in NOT_REGULAR])
def test_only_regular_files_are_written(tmp_path, make, words):
    target = tmp_path / "weights.safetensors"
    keep = make(target)
    before = os.lstat(target)
    with pytest.raises(OutputError) as info:
        atomic_write_bytes(target, b"new")
    assert str(info.value) == f"{target}: {words}; cnnspec writes its outputs only as regular files and replaces nothing else"
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["weights.safetensors"] + (["real"] if (tmp_path / "real").exists() else []))
    del keep


def test_dev_null_is_refused_not_replaced():
    before = os.stat("/dev/null")
    with pytest.raises(OutputError, match="is a character device"):
        atomic_write_bytes("/dev/null", b"x")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def _cli(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "cnnspec.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """Two reference sets (seeds 1 and 2) of the same spec: builds are byte-for-byte reproducible."""
    pytest.importorskip("onnx")
    base = tmp_path_factory.mktemp("refs")
    spec = base / "pub.yaml"
    spec.write_text(SPEC)
    sets = {}
    for seed in (1, 2, 3):
        proc = _cli("build", spec, "--backend", "onnx", "--seed", seed, "-o", base / f"seed{seed}", "--quiet")
        assert proc.returncode == 0, proc.stderr
        sets[seed] = _snapshot(base / f"seed{seed}")
    assert sets[1] != sets[2]
    return spec, sets


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _leftovers(*folders) -> list[str]:
    return [p.name for f in folders if f.exists() for p in f.iterdir() if any(t in p.name for t in LEFTOVER_TAGS)]


CONVERT_TARGETS = [
    ("dev-null", lambda tmp: Path("/dev/null"), "is a character device"),
    ("fifo", lambda tmp: (_fifo(tmp / "pipe"), tmp / "pipe")[1], "is a FIFO (named pipe)"),
    ("folder", lambda tmp: (tmp / "folder").mkdir() or tmp / "folder", "is a directory"),
]


@pytest.mark.parametrize("make,words", [c[1:] for c in CONVERT_TARGETS], ids=[c[0] for c in CONVERT_TARGETS])
def test_convert_refuses_a_target_that_is_not_a_regular_file(tmp_path, refs, make, words):
    pytest.importorskip("safetensors")
    spec, _ = refs
    weights = spec.parent / "seed1" / "weights.safetensors"
    target = make(tmp_path)
    proc = _cli("convert", spec, "--weights", weights, "--to", "keras", "-o", target, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"cnnspec: error: {target}: {words}; cnnspec writes its outputs only as regular files and replaces nothing else"]
    assert not stat.S_ISREG(os.stat(target).st_mode)


def test_a_build_over_a_folder_whose_weights_is_a_directory_touches_nothing(tmp_path, refs):
    spec, sets = refs
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(sets[1]["model.onnx"])
    (out / "weights.safetensors").mkdir()
    (out / "weights.safetensors" / "mine.txt").write_text("keep")
    before = {p.name: os.lstat(p) for p in out.iterdir()}
    proc = _cli("build", spec, "--backend", "onnx", "-o", out, "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"cnnspec: error: {out}/weights.safetensors: is a directory; cnnspec writes its "
                                   f"outputs only as regular files and replaces nothing else")
    assert {p.name: os.lstat(p) for p in out.iterdir()} == before  # same inodes, sizes, times
    assert (out / "model.onnx").read_bytes() == sets[1]["model.onnx"]
    assert (out / "weights.safetensors" / "mine.txt").read_text() == "keep"
    assert _leftovers(tmp_path, out) == []


def test_the_publish_step_refuses_a_directory_that_appeared_during_the_build(tmp_path):
    out = tmp_path / "out"
    fsutil.atomic_write_text(out / "model.onnx", "old model")
    with pytest.raises(OutputError, match=r"out/weights.safetensors: is a directory"):
        with staged_output(out) as stage:
            fsutil.atomic_write_text(stage / "model.onnx", "new model")
            fsutil.atomic_write_text(stage / "weights.safetensors", "new weights")
            (out / "weights.safetensors").mkdir()
    assert (out / "model.onnx").read_text() == "old model"
    assert _leftovers(tmp_path, out) == []


# ---------------------------------------------------------------- OS errors: one line, nothing left

def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}); the simulated "
                    f"ENOSPC test covers the message")


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt, "size=1m")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


BIG_SPEC = "cnnspec: 1\nname: big\ninput: [1, 32, 32]\nlayers:\n  - flatten\n  - dense: 600\n"  # 2.4 MB of weights


def test_disk_full_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, small_tmpfs):
    spec = tmp_path / "big.yaml"
    spec.write_text(BIG_SPEC)
    proc = _cli("build", spec, "--backend", "onnx", "-o", small_tmpfs / "out", "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"cnnspec: error: {small_tmpfs}/out/weights.safetensors: cannot write the weights: "
                                   f"No space left on device")
    assert list(small_tmpfs.iterdir()) == []  # not even the output folder
    tiny = tmp_path / "tiny.yaml"  # an old set that fits: still whole after the next build fails
    tiny.write_text("cnnspec: 1\nname: tiny\ninput: [1, 4, 4]\nlayers:\n  - flatten\n  - dense: 2\n")
    assert _cli("build", tiny, "--backend", "onnx", "-o", small_tmpfs / "out", "--quiet").returncode == 0
    old = _snapshot(small_tmpfs / "out")
    proc = _cli("build", spec, "--backend", "onnx", "-o", small_tmpfs / "out", "--quiet")
    assert proc.returncode == 2 and "No space left on device" in proc.stderr
    assert _snapshot(small_tmpfs / "out") == old
    assert _leftovers(small_tmpfs, small_tmpfs / "out") == []


def test_a_read_only_filesystem_is_one_line(tmp_path, refs):
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "size=1m,ro")
    try:
        spec, _ = refs
        proc = _cli("build", spec, "--backend", "onnx", "-o", mnt / "out", "--quiet")
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [f"cnnspec: error: {mnt}/out: cannot create or write: "
                                                    f"{mnt} is not writable"]  # said before any work
        with pytest.raises(OutputError) as info:  # and where it strikes at publishing time
            with staged_output(mnt / "out"):
                pass
        assert str(info.value) == f"{mnt}/out: cannot write the output files: Read-only file system"
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_file_size_limit_is_one_line_not_a_core_dump(tmp_path, refs):
    import resource

    spec, _ = refs
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # noqa: E731 - 20 KB per file
    proc = subprocess.run([sys.executable, "-m", "cnnspec.cli", "build", str(spec), "--backend", "onnx", "-o",
                           str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=120, env=ENV,
                          preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"cnnspec: error: {tmp_path}/out/weights.safetensors: cannot write the weights: File too large"
    assert list(tmp_path.iterdir()) == []


OS_ERRORS = [
    # (id, errno, where it strikes, the reason in the line)
    ("no-space", errno.ENOSPC, "fsync", "No space left on device"),
    ("quota", errno.EDQUOT, "fsync", "Disk quota exceeded"),
    ("permission", errno.EACCES, "mkstemp", "Permission denied"),
    ("read-only", errno.EROFS, "mkstemp", "Read-only file system"),
    ("io-error", errno.EIO, "replace", "Input/output error"),
]


@pytest.mark.parametrize("code,where,reason", [c[1:] for c in OS_ERRORS], ids=[c[0] for c in OS_ERRORS])
def test_os_errors_are_one_line_naming_the_published_file(tmp_path, monkeypatch, code, where, reason):
    """Simulated where a real filesystem cannot be had: the line names the file under its final
    name (not the stage's), says what it was, and the folder keeps its old set."""
    out = tmp_path / "out"
    fsutil.atomic_write_text(out / "model.onnx", "old model")

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    targets = {"fsync": (fsutil.os, "fsync"), "mkstemp": (fsutil.tempfile, "mkstemp"), "replace": (fsutil.os, "replace")}
    with pytest.raises(OutputError) as info:
        with staged_output(out) as stage:
            monkeypatch.setattr(*targets[where], fail)
            fsutil.atomic_write_bytes(stage / "model.onnx", b"new model")
    monkeypatch.undo()
    assert str(info.value) == f"{out}/model.onnx: cannot write the ONNX model: {reason}"
    assert _snapshot(out) == {"model.onnx": b"old model"}
    assert _leftovers(tmp_path, out) == []


def test_a_failure_in_a_new_folder_leaves_no_folders(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError):
        with staged_output(out) as stage:
            fsutil.atomic_write_text(stage / "model.onnx", "new")
            raise RuntimeError("late failure")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- the set: swapped whole

def _write_set(folder: Path, tag: str, names=("model.onnx", "weights.safetensors", "model.py")) -> None:
    for name in names:
        fsutil.atomic_write_text(folder / name, f"{tag}:{name}:" + "x" * 2000)


def _tags(dirfd: int, names) -> set:
    tags = set()
    for name in names:
        fd = os.open(name, os.O_RDONLY, dir_fd=dirfd)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        assert data.endswith(b"x" * 2000), "a partial file"
        tags.add(data.split(b":")[0])
    return tags


def test_readers_see_one_set_while_publishers_interleave(tmp_path):
    """Two publishers against one folder in every order of their steps, and a reader that opens the
    folder once and each file relative to it: it always finds one set, never a mix."""
    out = tmp_path / "out"
    with staged_output(out) as stage:
        _write_set(stage, "0")
    names = ("model.onnx", "weights.safetensors", "model.py")
    stop, seen, mixes = threading.Event(), set(), []

    def reader():
        while not stop.is_set():
            try:
                dirfd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue
            try:
                tags = _tags(dirfd, names)
                seen.update(tags)
                if len(tags) != 1:
                    mixes.append(tags)
            except FileNotFoundError:
                pass  # its set was replaced and removed meanwhile: a reader opens again
            finally:
                os.close(dirfd)

    def publisher(tag, staged, go):
        with staged_output(out) as stage:
            _write_set(stage, tag)
            staged.set()
            go.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for order in ("AB", "BA", "AB", "BA"):
            events = {t: (threading.Event(), threading.Event()) for t in "AB"}
            workers = {t: threading.Thread(target=publisher, args=(t, *events[t])) for t in "AB"}
            for w in workers.values():
                w.start()
            for t in "AB":
                assert events[t][0].wait(10)  # both staged before either publishes
            for t in order:
                events[t][1].set()
                workers[t].join(10)
                assert _tags_by_path(out, names) == {t}
    finally:
        stop.set()
        thread.join(10)
    assert mixes == []
    assert {b"A", b"B"} <= seen
    assert _leftovers(tmp_path, out) == []


def _tags_by_path(out: Path, names) -> set:
    return {(out / n).read_bytes().split(b":")[0].decode() for n in names}


def test_user_files_are_kept_and_the_folder_mode_too(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        _write_set(stage, "0")
    (out / "notes.txt").write_text("mine")
    os.symlink("notes.txt", out / "link")
    out.chmod(0o750)
    with staged_output(out) as stage:
        _write_set(stage, "1", names=("model.onnx",))
    assert _tags_by_path(out, ("model.onnx",)) == {"1"}
    assert (out / "notes.txt").read_text() == "mine" and os.readlink(out / "link") == "notes.txt"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert (out / "model.py").read_text().startswith("0:")  # not in the new set: kept, never deleted


FILE_BY_FILE = [
    # (id, how the folder is made unswappable, the reason the warning gives)
    ("subfolder", lambda out, tmp: (out / "mine").mkdir(), "it holds folders of its own (mine/)"),
    ("current-directory", lambda out, tmp: os.chdir(out), "it is the current directory or holds it"),
]


@pytest.mark.parametrize("make,why", [c[1:] for c in FILE_BY_FILE], ids=[c[0] for c in FILE_BY_FILE])
def test_a_folder_that_cannot_be_swapped_gets_file_by_file_and_a_warning(tmp_path, monkeypatch, capsys, make, why):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        _write_set(stage, "0")
    monkeypatch.chdir(tmp_path)
    make(out, tmp_path)
    inode = out.stat().st_ino
    with staged_output(out) as stage:
        _write_set(stage, "1")
    assert _tags_by_path(out, ("model.onnx", "weights.safetensors")) == {"1"}
    assert out.stat().st_ino == inode  # the same folder: nothing swapped
    assert f"{out}: {why}; its files are replaced one by one" in capsys.readouterr().err
    assert _leftovers(tmp_path, out) == []


def test_a_mount_point_gets_file_by_file(small_tmpfs, capsys):
    with staged_output(small_tmpfs) as stage:
        _write_set(stage, "1")
    assert _tags_by_path(small_tmpfs, ("model.onnx",)) == {"1"}
    assert "it is a mount point" in capsys.readouterr().err
    assert _leftovers(small_tmpfs) == []


def test_without_renameat2_the_old_folder_goes_aside_and_a_kill_between_is_undone(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        _write_set(stage, "0")
    monkeypatch.setattr(publish, "_renameat2", lambda: None)
    with staged_output(out) as stage:
        _write_set(stage, "1")
    assert _tags_by_path(out, ("model.onnx", "weights.safetensors", "model.py")) == {"1"}
    assert _leftovers(tmp_path, out) == []
    # a process killed between its two renames: the old folder aside, none at the name
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    aside = tmp_path / f".out{publish.ASIDE_TAG}{dead.pid}-xyz"
    aside.mkdir()
    out.rename(aside / publish.ASIDE_SET)
    with staged_output(tmp_path / "other"):
        pass  # a publication elsewhere leaves it alone
    assert aside.exists()
    with pytest.raises(RuntimeError):
        with staged_output(out):
            raise RuntimeError("even a failed run puts the old folder back")
    assert _tags_by_path(out, ("model.onnx",)) == {"1"}
    assert _leftovers(tmp_path, out) == []


def test_a_live_stage_is_never_swept(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as first:
        _write_set(first, "A")
        with staged_output(out) as second:  # the same process, another publication: its stage stays
            assert first.exists()
            _write_set(second, "B")
        assert first.exists() and _tags_by_path(out, ("model.onnx",)) == {"B"}
    assert _tags_by_path(out, ("model.onnx",)) == {"A"}
    assert _leftovers(tmp_path, out) == []


# ---------------------------------------------------------------- real builds, interleaved and killed

# the CLI with hooks: wait for a file before publishing, or send a signal to itself at one step
HOOKS = textwrap.dedent("""
    import os, shutil, signal, sys, time
    import cnnspec.files.atomic as fsutil
    import cnnspec.files.publish as publish

    wait_for = os.environ.get("HOOK_WAIT")
    if wait_for:
        real_publish = publish._Publication.publish
        def publish_after_wait(self):
            open(wait_for + ".waiting", "w").close()
            while not os.path.exists(wait_for):
                time.sleep(0.01)
            return real_publish(self)
        publish._Publication.publish = publish_after_wait

    kill_at = os.environ.get("HOOK_KILL")  # name:before|after:nth:signal
    if kill_at:
        name, when, nth, sig = kill_at.split(":")
        owner = shutil if name == "rmtree" else (publish if hasattr(publish, name) else fsutil)
        real = getattr(owner, name)
        calls = [0]
        def hooked(*args, **kwargs):
            calls[0] += 1
            hit = calls[0] == int(nth)
            if hit and when == "before":
                os.kill(os.getpid(), getattr(signal, sig))
            result = real(*args, **kwargs)
            if hit and when == "after":
                os.kill(os.getpid(), getattr(signal, sig))
            return result
        setattr(owner, name, hooked)

    if os.environ.get("HOOK_READY"):
        import onnx, numpy  # imports first: a random kill then lands in the build itself
        print("ready", flush=True)
        sys.stdin.readline()
    from cnnspec.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.fixture
def hooks(tmp_path):
    path = tmp_path / "hooks.py"
    path.write_text(HOOKS)
    return path


def _hooked(hooks, spec, out, seed, **env):
    return subprocess.Popen([sys.executable, str(hooks), "build", str(spec), "--backend", "onnx", "--seed", str(seed),
                             "-o", str(out), "--quiet"], env={**ENV, **env}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_two_builds_into_one_folder_forced_to_interleave(tmp_path, refs, hooks):
    """A stages first and waits at its publish; B builds and publishes whole; then A publishes
    whole. The folder is B's set, then A's, never a mix, and no stage is left."""
    spec, sets = refs
    out = tmp_path / "out"
    assert _cli("build", spec, "--backend", "onnx", "--seed", 3, "-o", out, "--quiet").returncode == 0
    go = tmp_path / "go-a"
    a = _hooked(hooks, spec, out, 1, HOOK_WAIT=str(go))
    _wait_for(Path(f"{go}.waiting"), a)
    assert _snapshot(out) == sets[3]
    b = _hooked(hooks, spec, out, 2)
    assert b.wait(120) == 0, b.stderr.read()
    assert _snapshot(out) == sets[2]
    go.touch()
    assert a.wait(120) == 0, a.stderr.read()
    assert _snapshot(out) == sets[1]
    assert _leftovers(tmp_path, out) == []
    for p in (a, b):
        p.stdout.close(), p.stderr.close(), p.stdin.close()


def _publish(out: Path, files: dict) -> None:
    with staged_output(out) as stage:
        for name, data in files.items():
            atomic_write_bytes(stage / name, data)


# every step of a publication, in order: (function, before/after, which call)
STEPS = [
    ("_lock", "after", 1),                 # the stage exists, nothing written
    ("atomic_write_bytes", "after", 1),    # one file staged
    ("_carry_over", "before", 1),          # all staged, user files not yet linked
    ("_rename2", "before", 2),             # linked, about to exchange
    ("_rename2", "after", 2),              # exchanged: the new set is published
    ("rmtree", "before", 1),               # removing the old set
]


# how each signal ends the build: (exit status, its last words; None for SIGKILL, which allows none)
ENDINGS = {"SIGKILL": (-signal.SIGKILL, None), "SIGTERM": (-signal.SIGTERM, "cnnspec: stopped by SIGTERM"),
           "SIGHUP": (-signal.SIGHUP, "cnnspec: stopped by SIGHUP"), "SIGINT": (130, "cnnspec: interrupted")}


@pytest.mark.parametrize("sig", list(ENDINGS))
def test_a_build_killed_at_every_step_leaves_the_old_set_or_the_new(tmp_path, refs, hooks, sig):
    spec, sets = refs
    out = tmp_path / "out"
    old = {**sets[1], "notes.txt": b"mine"}
    new = {**sets[2], "notes.txt": b"mine"}
    for name, when, nth in STEPS:
        _publish(out, old)  # the old set, as a build with seed 1 leaves it, and a file of the user's
        proc = _hooked(hooks, spec, out, 2, HOOK_KILL=f"{name}:{when}:{nth}:{sig}")
        _, err = proc.communicate(timeout=120)
        step = f"{name} {when} call {nth}"
        status, words = ENDINGS[sig]
        assert proc.returncode == status, (step, err)
        now = _snapshot(out)
        assert now in (old, new), f"{sig} at {step}: a mixed set {sorted(now)}"
        if words is not None:
            assert err.strip() == words, step
            assert _leftovers(tmp_path, out) == [], step
    assert _cli("build", spec, "--backend", "onnx", "--seed", 2, "-o", out, "--quiet").returncode == 0
    assert _leftovers(tmp_path, out) == []  # what SIGKILL left, the next build removed
    assert _snapshot(out) == new


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_a_build_killed_at_random_moments_leaves_the_old_set_or_the_new(tmp_path, refs, hooks, sig):
    spec, sets = refs
    out = tmp_path / "out"
    rng = random.Random(13)
    assert _cli("build", spec, "--backend", "onnx", "--seed", 1, "-o", out, "--quiet").returncode == 0
    timed = _hooked(hooks, spec, tmp_path / "timed", 1, HOOK_READY="1")
    assert timed.stdout.readline() == "ready\n"
    start = time.perf_counter()
    timed.stdin.write("\n"), timed.stdin.flush()
    assert timed.wait(120) == 0
    duration = time.perf_counter() - start
    for _ in range(6):  # the folder holds one set; each build brings the other
        current = _snapshot(out)
        incoming = sets[2] if current == sets[1] else sets[1]
        proc = _hooked(hooks, spec, out, 2 if incoming == sets[2] else 1, HOOK_READY="1")
        assert proc.stdout.readline() == "ready\n"
        proc.stdin.write("\n"), proc.stdin.flush()
        time.sleep(rng.uniform(0, duration * 1.2))
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
        now = _snapshot(out)
        assert now in (current, incoming), f"killed after a random delay: a mixed set {sorted(now)}"
        if sig == "SIGTERM":
            assert _leftovers(tmp_path, out) == [], err
    assert _cli("build", spec, "--backend", "onnx", "--seed", 1, "-o", out, "--quiet").returncode == 0
    assert _leftovers(tmp_path, out) == []
