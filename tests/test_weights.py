"""Weights files are hostile input: each bad one is one error naming the file and the problem, exit 2,
nothing written (a misfit lists its tensors, a line each); a pickle is never loaded; the writer's bytes
depend on the numbers alone. The foreign formats have their own tests (test_weight_formats.py)."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save

import cnnspec
from cnnspec.cli import main
from cnnspec.errors import InputError
from cnnspec.weights.neutral import expected_weights
from cnnspec.backend.weightfiles import read_weights
from cnnspec.weights.safetensors_io import canonical_safetensors, read_safetensors, write_weights

SPEC = """cnnspec: 1
name: w
input: [1, 6, 6]
layers:
  - conv2d: {filters: 2, kernel: 3}
  - batchnorm
  - flatten
  - dense: 3
"""


@pytest.fixture(scope="module")
def graph():
    return cnnspec.loads(SPEC).graph


def good(graph) -> dict:
    return {k: np.ones(s, np.float32) for k, s in expected_weights(graph).items()}


def header_file(header: dict, payload: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + payload


def _cases(graph):
    ok = good(graph)
    return {
        "empty": (b"", "not a valid safetensors file"),
        "garbage": (b"\x00garbage!", "not a valid safetensors file"),
        "header-length-lies": (struct.pack("<Q", 2 ** 62) + b"{}", "not a valid safetensors file"),
        "header-not-json": (struct.pack("<Q", 5) + b"{nope", "not a valid safetensors file"),
        "offsets-past-the-end": (header_file({"x": {"dtype": "F32", "shape": [10 ** 8], "data_offsets": [0, 4 * 10 ** 8]}}),
                                 "not a valid safetensors file"),
        "truncated": (save(ok)[:-7], "not a valid safetensors file"),
        "missing-key": (save({k: v for k, v in ok.items() if k != "dense_1.bias"}),
                        "does not fit spec 'w': 1 tensor missing\n  missing    dense_1.bias [3]"),
        "extra-key": (save({**ok, "stray.weight": np.ones(2, np.float32)}), "1 tensor unexpected\n  unexpected stray.weight [2]"),
        "wrong-shape": (save({**ok, "dense_1.weight": np.ones((3, 5), np.float32)}),
                        "1 tensor wrongly shaped\n  shape      dense_1.weight: [3, 5] in the file, the spec needs [3, 32]"),
        "integers": (save({**ok, "dense_1.bias": np.ones(3, np.int64)}), "not floating-point"),
        "nan": (save({**ok, "dense_1.bias": np.array([1, np.nan, 0], np.float32)}), "NaN or infinite"),
    }


MISFITS = ("missing-key", "extra-key", "wrong-shape")
CASE_IDS = ["empty", "garbage", "header-length-lies", "header-not-json", "offsets-past-the-end", "truncated",
            "missing-key", "extra-key", "wrong-shape", "integers", "nan"]


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_weights_file_is_one_located_error(graph, tmp_path, case):
    raw, message = _cases(graph)[case]
    path = tmp_path / "w.safetensors"
    path.write_bytes(raw)
    with pytest.raises(InputError) as info:
        read_weights(path, graph)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text
    assert len(text.splitlines()) == (2 if case in MISFITS else 1)


@pytest.mark.parametrize("name, message", [
    ("model.pt", "a bare pickle"), ("model.pth", "a bare pickle"), ("model.bin", "a bare pickle"),
    ("ckpt.pkl", "not a weights format cnnspec reads"), ("ckpt.ckpt", "not a weights format cnnspec reads"),
    ("model.h5", "not an HDF5 file"), ("model.keras", "not a .keras file"), ("model.onnx", "not an ONNX model"),
])
def test_a_bare_pickle_is_never_opened(graph, tmp_path, name, message):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04\x95 a pickle that must never be loaded")
    with pytest.raises(InputError, match=message) as info:
        read_weights(path, graph)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="not read as safetensors"):
        read_safetensors(path)


def test_write_then_read_round_trips_with_stable_bytes(graph, tmp_path):
    weights = {k: np.random.default_rng(1).normal(size=s).astype(np.float32) for k, s in expected_weights(graph).items()}
    blobs = []
    for i in range(6):  # safetensors orders its metadata at random per call
        write_weights(tmp_path / f"{i}.safetensors", weights, graph)
        blobs.append((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(set(blobs)) == 1
    back = read_weights(tmp_path / "0.safetensors", graph)
    assert list(back) == list(expected_weights(graph))
    for key in weights:
        np.testing.assert_array_equal(back[key], weights[key])


def test_canonical_header_keeps_offsets_valid():
    raw = save({"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), np.float32)},
               metadata={"z": "1", "format": "cnnspec", "spec": "x" * 13})
    fixed = canonical_safetensors(raw)
    (size,) = struct.unpack("<Q", fixed[:8])
    assert size % 8 == 0 and list(json.loads(fixed[8:8 + size])["__metadata__"]) == ["format", "spec", "z"]
    from safetensors.numpy import load

    np.testing.assert_array_equal(load(fixed)["b"], np.arange(3, dtype=np.float32))


def test_convert_with_bad_weights_is_exit_2_and_writes_nothing(graph, tmp_path, capsys):
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage!")
    out = tmp_path / "out.safetensors"
    rc = main(["convert", str(spec), "--weights", str(bad), "--to", "keras", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "bad.safetensors" in err and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors", "w.yaml"]


def test_convert_needs_only_the_core(graph, tmp_path):
    """Weight layouts live in cnnspec.weights.keras_layout: convert runs with no backend package importable."""
    import subprocess
    import sys
    from pathlib import Path

    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC)
    write_weights(tmp_path / "w.safetensors", good(graph), graph)
    code = ("import sys; sys.modules.update(cnnspec_keras=None, cnnspec_torch=None, cnnspec_onnx=None); "
            "from cnnspec.cli import main; "
            f"sys.exit(main(['convert', {str(spec)!r}, '--weights', {str(tmp_path / 'w.safetensors')!r}, "
            "'--to', 'keras', '--quiet']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "w.keras.safetensors").is_file()
