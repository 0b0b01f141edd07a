import os
import stat

import pytest

from cnnspec.errors import UsageError
from cnnspec.files.atomic import atomic_write_bytes


def test_atomic_write_follows_umask_and_leaves_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_output_under_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        atomic_write_bytes(tmp_path / "f" / "x.bin", b"x")


def test_staged_output_publishes_all_files_or_none(tmp_path):
    from cnnspec.files.atomic import atomic_write_text
    from cnnspec.files.publish import staged_output

    out = tmp_path / "out"
    atomic_write_text(out / "model.onnx", "old model")
    with pytest.raises(RuntimeError):
        with staged_output(out) as stage:
            atomic_write_text(stage / "weights.safetensors", "new weights")
            raise RuntimeError("export failed")
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]  # no new weights beside the old model
    assert (out / "model.onnx").read_text() == "old model"
    with staged_output(out) as stage:
        atomic_write_text(stage / "weights.safetensors", "new weights")
        atomic_write_text(stage / "model.onnx", "new model")
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "weights.safetensors"]
    assert (out / "model.onnx").read_text() == "new model"


@pytest.mark.parametrize("in_place", [False, True], ids=["swapped", "file-by-file"])
def test_a_withdrawn_name_goes_with_the_old_set_unless_written_again(tmp_path, in_place):
    """train's model.int8.onnx: a run without --quantize must not publish beside an old one; the
    user's own files stay (a subfolder forces the file-by-file way)."""
    from cnnspec.files.atomic import atomic_write_text
    from cnnspec.files.publish import staged_output

    out = tmp_path / "out"
    atomic_write_text(out / "model.int8.onnx", "old int8")
    atomic_write_text(out / "notes.txt", "mine")
    if in_place:
        (out / "sub").mkdir()
    with staged_output(out, withdrawn=("model.int8.onnx",)) as stage:
        atomic_write_text(stage / "model.onnx", "new model")
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "notes.txt"] + (["sub"] if in_place else [])
    with staged_output(out, withdrawn=("model.int8.onnx",)) as stage:
        atomic_write_text(stage / "model.int8.onnx", "new int8")
    assert (out / "model.int8.onnx").read_text() == "new int8" and (out / "model.onnx").read_text() == "new model"


def test_a_build_that_fails_late_writes_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    import cnnspec.onnxfile.writer
    from cnnspec.cli import main

    def broken_export(graph, weights, path, backend="onnx"):
        raise RuntimeError("the exporter fell over")

    monkeypatch.setattr(cnnspec.onnxfile.writer, "write_onnx", broken_export)
    spec = tmp_path / "s.yaml"
    spec.write_text("cnnspec: 1\nname: s\ninput: [1, 4, 4]\nlayers:\n  - flatten\n  - dense: 2\n")
    out = tmp_path / "out"
    assert main(["build", str(spec), "--backend", "torch", "-o", str(out), "--quiet"]) == 1
    assert "the exporter fell over" in capsys.readouterr().err
    assert not out.exists()  # weights.safetensors and model.py were written, then withdrawn, and no empty folder made


def test_output_folder_is_checked_early_but_created_late(tmp_path):
    from cnnspec.files.atomic import check_can_create_dir

    assert check_can_create_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        check_can_create_dir(tmp_path / "f")
    with pytest.raises(UsageError, match="is not a directory"):
        check_can_create_dir(tmp_path / "f" / "sub")


def test_published_names_are_synced_to_disk(tmp_path, monkeypatch):
    """Each file's bytes, and the folders that hold the new names, are fsynced: after a power cut
    the set is the old one or the new one, not an empty name."""
    import os

    from cnnspec.files.atomic import atomic_write_text
    from cnnspec.files.publish import staged_output

    synced = []
    real = os.fsync

    def record(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    out = tmp_path / "out"
    with staged_output(out) as stage:
        atomic_write_text(stage / "model.onnx", "new")
    assert str(tmp_path) in synced and str(out) in synced
