"""README's "A short tour", run as written: the block is read from README.md itself and run by bash, in
order, in a fresh folder holding only what the repository ships (``specs/``, ``examples/``), so the
README and the tool cannot drift apart (issue 22). Slow: it builds with both frameworks, trains 3
epochs, quantises and benches (about a minute on two cores).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("specs", "examples")  # what the tour may read besides what its own earlier lines write


def tour_block(readme: str) -> str:
    """The first ```sh block after the "A short tour" heading."""
    section = readme[readme.index("## A short tour\n"):]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, "README's 'A short tour' has no ```sh block"
    return found.group(1)


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments kept (bash drops them)."""
    out, current = [], ""
    for line in block.splitlines():
        current += line + "\n"
        if not line.rstrip().endswith("\\"):
            out.append(current.strip())
            current = ""
    return [c for c in out if c]


def test_the_tour_block_is_found_and_every_line_is_a_cnnspec_command():
    cmds = commands(tour_block((ROOT / "README.md").read_text(encoding="utf-8")))
    assert len(cmds) >= 10 and all(c.startswith("cnnspec ") for c in cmds), cmds
    # every file a command reads is shipped or written by an earlier command: no digit.png, photos/, model.onnx
    code = "\n".join(line.split("  #")[0] for c in cmds for line in c.splitlines())
    for missing in ("digit.png", "photos/", " model.onnx"):
        assert missing not in code


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.keras
@pytest.mark.xdist_group("keras")
def test_every_tour_command_runs_in_order_in_a_fresh_folder(tmp_path):
    block = tour_block((ROOT / "README.md").read_text(encoding="utf-8"))
    for name in SHIPPED:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    script = tmp_path / "tour.sh"
    # each command echoed before it runs, so a failure names its line
    lines = [f"echo {json.dumps('$ ' + c.splitlines()[0])} >&2\n{c}" for c in commands(block)]
    script.write_text("set -euo pipefail\n" + "\n".join(lines) + "\n")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "2",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
    proc = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # what the tour says each line leaves behind
    assert isinstance(json.loads((tmp_path / "zoo.json").read_text()), list)
    assert json.loads((tmp_path / "cnnspec.schema.json").read_text())["$schema"]
    assert "<svg" in (tmp_path / "resnet50.html").read_text()
    for path in ("out/torch/model.onnx", "out/torch/model.py", "out/keras/model.keras", "runs/digits/model.onnx",
                 "runs/digits/model.int8.onnx"):
        assert (tmp_path / path).is_file(), path
    # run on examples/digits: held-out digits, each named by its class; 3 epochs get nearly all right
    top = re.findall(r"^examples/digits/digit-(\d)\.png\n\s+1\. (\d) ", proc.stdout, re.M)
    assert len(top) == 10 and sum(a == b for a, b in top) >= 8, proc.stdout[-3000:]
    assert "faster than" in proc.stdout or "slower than" in proc.stdout or "as fast as" in proc.stdout
