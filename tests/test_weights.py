"""Weights files are hostile input: each bad one is one line naming the file and the problem, exit 2,
nothing written; only safetensors is ever read; the writer's bytes depend on the numbers alone."""
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
from cnnspec.weights.safetensors_io import canonical_safetensors, read_weights, write_weights

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
        "missing-key": (save({k: v for k, v in ok.items() if k != "dense_1.bias"}), "missing 1 tensors"),
        "extra-key": (save({**ok, "stray.weight": np.ones(2, np.float32)}), "no place for"),
        "wrong-shape": (save({**ok, "dense_1.weight": np.ones((3, 5), np.float32)}), "has shape [3, 5] but the spec needs"),
        "integers": (save({**ok, "dense_1.bias": np.ones(3, np.int64)}), "not floating-point"),
        "nan": (save({**ok, "dense_1.bias": np.array([1, np.nan, 0], np.float32)}), "NaN or infinite"),
    }


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
    assert text.startswith(str(path)) and message in text and "\n" not in text


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "ckpt.pkl", "model.h5", "model.keras"])
def test_pickles_and_framework_files_are_never_opened(graph, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04\x95 a pickle that must never be loaded")
    with pytest.raises(InputError, match="only safetensors weights are read"):
        read_weights(path, graph)


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
