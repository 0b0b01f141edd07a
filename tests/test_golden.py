"""Golden files: the printed table of every spec in specs/, and the errors of broken examples.

Regenerate after an intended change with ``CNNSPEC_UPDATE_GOLDEN=1 pytest tests/test_golden.py``
and review the diff.
"""
import os
from pathlib import Path

import pytest

from cnnspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
BROKEN = sorted((GOLDEN / "errors").glob("*.yaml"))
UPDATE = os.environ.get("CNNSPEC_UPDATE_GOLDEN") == "1"


def _compare(actual: str, golden: Path):
    if UPDATE or not golden.exists():
        golden.write_text(actual, encoding="utf-8")
        if not UPDATE:
            pytest.fail(f"{golden.name} did not exist; written now, review and commit it")
    assert actual == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_check_table(spec, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["check", f"specs/{spec.name}"]) == 0
    out = capsys.readouterr().out
    _compare(out, GOLDEN / f"{spec.stem}.txt")


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_check_table_all_columns(spec, monkeypatch, capsys):
    """Every figure of every layer (receptive fields, strides, shares, FLOPs), reviewed as text."""
    monkeypatch.chdir(ROOT)
    assert main(["check", f"specs/{spec.name}", "--columns", "all"]) == 0
    _compare(capsys.readouterr().out, GOLDEN / "wide" / f"{spec.stem}.txt")


BLOCK_SPECS = [p for p in SPECS if any(word in p.read_text(encoding="utf-8") for word in ("blocks:", "import:"))]


@pytest.mark.parametrize("spec", BLOCK_SPECS, ids=[p.stem for p in BLOCK_SPECS])
def test_check_blocks_with_memory(spec, monkeypatch, capsys):
    """One row per block call, and the memory at a batch size with its assumptions."""
    monkeypatch.chdir(ROOT)
    assert main(["check", f"specs/{spec.name}", "--blocks", "--batch", "32"]) == 0
    _compare(capsys.readouterr().out, GOLDEN / "blocks" / f"{spec.stem}.txt")


@pytest.mark.parametrize("spec", BROKEN, ids=[p.stem for p in BROKEN])
def test_check_errors(spec, monkeypatch, capsys):
    monkeypatch.chdir(GOLDEN / "errors")
    assert main(["check", spec.name]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    _compare(captured.err, spec.with_suffix(".txt"))


def test_small_tables_fit_80_columns():
    for name in ("keras-mnist-cnn", "lenet-5", "digits"):
        golden = GOLDEN / f"{name}.txt"
        if golden.exists():
            assert max(len(line) for line in golden.read_text().splitlines()) <= 80, name
