"""Hostile corpus for ``cnnspec run`` (issue 13): a model's metadata and every file header are
input, validated before use; unusable inputs, NaN, and whatever ONNX Runtime raises are one line
naming the file, exit 2; ``--json`` is strict JSON."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from PIL import Image  # noqa: E402

import cnnspec.graph.resources  # noqa: E402
from cnnspec.cli import main  # noqa: E402
from cnnspec.runner import output  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "backends")])}
SPEC = """cnnspec: 1
name: hostile
input: [1, 8, 8]
classes: [a, b, c]
layers:
  - conv2d: {filters: 2, kernel: 3, padding: same}
  - flatten
  - dense: 3
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    base = tmp_path_factory.mktemp("model")
    (base / "s.yaml").write_text(SPEC)
    assert main(["build", str(base / "s.yaml"), "--backend", "onnx", "-o", str(base / "m"), "--quiet"]) == 0
    return base / "m" / "model.onnx"


@pytest.fixture(scope="module")
def x_npy(tmp_path_factory):
    path = tmp_path_factory.mktemp("x") / "x.npy"
    np.save(path, np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32))
    return path


def _one_line_error(capfd, argv) -> str:
    """Runs ``cnnspec run``; exit 2 and exactly one line on stderr (fd level: ONNX Runtime's own
    log would show there), which it returns."""
    assert main(["run", *map(str, argv)]) == 2
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert out == ""
    return lines[0]


# ---------------------------------------------------------------- metadata

def _edited(model: Path, tmp_path: Path, *, meta=None, drop=(), open_dims=False, graph_name=None) -> Path:
    m = onnx.load(str(model))
    for key in drop:
        for p in [p for p in m.metadata_props if p.key == key]:
            m.metadata_props.remove(p)
    for key, value in (meta or {}).items():
        entry = next((p for p in m.metadata_props if p.key == key), None) or m.metadata_props.add()
        entry.key, entry.value = key, value
    if open_dims:
        dims = m.graph.input[0].type.tensor_type.shape.dim
        for i in (1, 2, 3):
            dims[i].ClearField("dim_value")
            dims[i].dim_param = f"d{i}"
    if graph_name is not None:
        m.graph.name = graph_name
    path = tmp_path / "edited.onnx"
    onnx.save(m, str(path))
    return path


DEEP = "[" * 100_000 + "]" * 100_000

METADATA_NOT_SAID = [
    # (id, metadata edits, keys dropped): the model runs; what the metadata cannot say is not said
    ("deep-classes", {"cnnspec.classes": DEEP}, ()),
    ("huge-classes", {"cnnspec.classes": json.dumps(["x" * 3_000_000] * 3)}, ()),
    ("classes-not-strings", {"cnnspec.classes": "[1, 2, 3]"}, ()),
    ("deep-spec-no-output-keys", {"cnnspec.spec": DEEP}, ("cnnspec.output_op", "cnnspec.output_activation")),
    ("yaml-bomb-spec", {"cnnspec.spec": "a: &a [" + ", ".join(["*a"] * 10) + "]"}, ("cnnspec.output_op",)),
    ("control-chars-in-name", {"cnnspec.name": "evil\x1b[2J"}, ()),
    ("huge-name", {"cnnspec.name": "n" * 100_000}, ()),
]


@pytest.mark.parametrize("meta,drop", [c[1:] for c in METADATA_NOT_SAID], ids=[c[0] for c in METADATA_NOT_SAID])
def test_hostile_metadata_means_not_said(model, x_npy, tmp_path, capfd, meta, drop):
    edited = _edited(model, tmp_path, meta=meta, drop=drop)
    assert main(["run", str(edited), "--input", str(x_npy), "--json"]) == 0
    out, err = capfd.readouterr()
    doc = json.loads(out)
    assert err == ""
    assert doc["name"] in ("hostile", "unnamed") and len(doc["results"]) == 2
    if "cnnspec.classes" in meta:
        assert all(t["label"] is None for r in doc["results"] for t in r["top"])


INPUT_SHAPES = [
    # (id, cnnspec.input_shape where the graph leaves C, H, W open, the words of the one line)
    ("two-numbers", "[8, 8]", "is [8, 8]; cnnspec run needs [channels, height, width]"),
    ("four-numbers", "[1, 1, 8, 8]", "needs [channels, height, width]"),
    ("1e400", "[1e400, 8, 8]", "is [inf, 8, 8]; each size must be a whole number from 1 to 1,000,000"),
    ("zero", "[0, 8, 8]", "is [0, 8, 8]; each size"),
    ("negative", "[1, -8, 8]", "is [1, -8, 8]; each size"),
    ("fraction", "[1.5, 8, 8]", "is [1.5, 8, 8]; each size"),
    ("boolean", "[true, 8, 8]", "is [True, 8, 8]; each size"),
    ("string", '["1", 8, 8]', "is ['1', 8, 8]; each size"),
    ("too-large", "[1, 8, 10000001]", "each size must be a whole number from 1 to 1,000,000"),
    ("an-object", '{"c": 1}', "needs [channels, height, width]"),
    ("nested", DEEP, "leaves channels, height or width open, and its metadata holds no usable cnnspec.input_shape"),
    ("not-json", "[1, 8", "no usable cnnspec.input_shape"),
    ("absent", None, "no usable cnnspec.input_shape"),
]


@pytest.mark.parametrize("shape,words", [c[1:] for c in INPUT_SHAPES], ids=[c[0] for c in INPUT_SHAPES])
def test_an_input_shape_from_metadata_is_validated(model, x_npy, tmp_path, capfd, shape, words):
    edited = _edited(model, tmp_path, meta={} if shape is None else {"cnnspec.input_shape": shape}, open_dims=True,
                     drop=("cnnspec.input_shape",) if shape is None else ())
    line = _one_line_error(capfd, [edited, "--input", x_npy])
    assert line.startswith(f"cnnspec: error: {edited}: ") and words in line


def test_a_declared_input_bigger_than_memory_is_refused_before_the_image_is_resized(model, tmp_path, capfd):
    """An 8x8 PNG and a model declaring [3, 40000, 40000]: the figure, not gigabytes of resizing."""
    edited = _edited(model, tmp_path, meta={"cnnspec.input_shape": "[3, 40000, 40000]"}, open_dims=True)
    png = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    line = _one_line_error(capfd, [edited, "--input", png])
    assert line.startswith(f"cnnspec: error: {edited}: its declared input [1, 3, 40000, 40000] as float32 would need "
                           f"17.88 GiB, more than half of this machine's")


# ---------------------------------------------------------------- input files and headers

def _npy_with_header(path: Path, header: dict, payload: bytes = b"\0" * 256, version=(1, 0)) -> Path:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header) if version == (1, 0) else \
            np.lib.format.write_array_header_2_0(fh, header)
        fh.write(payload)
    return path


def _text(path: Path) -> Path:
    path.write_text("hello, I am text\n")
    return path


def _zero_link(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


def _bad_version(path: Path) -> Path:
    path.write_bytes(b"\x93NUMPY\x09\x00" + b"\0" * 100)
    return path


def _bad_header(path: Path) -> Path:
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (__import__('os'),), }"
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    return path


def _float_tiff(value):
    def make(path: Path) -> Path:
        pixels = np.zeros((8, 8), np.float32)
        pixels[3, 4] = value
        Image.fromarray(pixels, mode="F").save(path)
        return path
    return make


def _npy(array):
    def make(path: Path) -> Path:
        np.save(path, array, allow_pickle=True)
        return path
    return make


F4 = {"descr": "<f4", "fortran_order": False}
BAD_INPUTS = [
    # (id, file name, how to make it, the words of the one line)
    ("text-named-npy", "t.npy", _text, "t.npy: not a .npy array (no .npy header)"),
    ("dev-zero-named-npy", "z.npy", _zero_link, "z.npy: not a .npy array (a character device, not a regular file)"),
    ("dev-zero-as-image", "z.png", _zero_link, "z.png: a character device, not a regular file; give a .npy array or an "
     "image file"),
    ("unknown-npy-version", "v.npy", _bad_version, "v.npy: not a .npy array (unknown .npy version 9.0)"),
    ("code-in-header", "h.npy", _bad_header, "h.npy: not a .npy array (malformed .npy header)"),
    ("header-declares-1e12", "big.npy",
     lambda p: _npy_with_header(p, {**F4, "shape": (10 ** 12, 1, 8, 8)}),
     "big.npy: the .npy header declares [1000000000000, 1, 8, 8] float32 (256,000,000,000,000 bytes) but the file "
     "holds less (256 bytes)"),
    ("header-declares-more", "more.npy",
     lambda p: _npy_with_header(p, {**F4, "shape": (3, 1, 8, 8)}, b"\0" * 512),
     "the file holds less (512 bytes)"),
    ("header-declares-less", "less.npy",
     lambda p: _npy_with_header(p, {**F4, "shape": (1, 8, 8)}, b"\0" * 300), "the file holds more (300 bytes)"),
    ("version-2-liar", "v2.npy",
     lambda p: _npy_with_header(p, {**F4, "shape": (10 ** 9, 1, 8, 8)}, version=(2, 0)), "declares [1000000000, 1, 8, 8]"),
    ("python-objects", "o.npy", _npy(np.array([{"a": 1}], dtype=object)),
     "o.npy: holds Python objects: loading them means unpickling, and cnnspec never unpickles"),
    ("complex-values", "c.npy", _npy(np.zeros((1, 8, 8), np.complex64)), "holds complex64 values"),
    ("nan-array", "n.npy", _npy(np.full((1, 8, 8), np.nan, np.float32)), "n.npy: holds NaN or infinite values"),
    ("inf-array", "i.npy", _npy(np.full((1, 8, 8), np.inf, np.float32)), "holds NaN or infinite values"),
    ("no-samples", "e.npy", _npy(np.zeros((0, 1, 8, 8), np.float32)), "the array holds no samples"),
    ("wrong-shape", "w.npy", _npy(np.zeros((8, 8), np.float32)), "array of shape [8, 8] does not fit"),
    ("nan-float-tiff", "nan.tiff", _float_tiff(np.nan), "nan.tiff: the image holds NaN or infinite values"),
    ("inf-float-tiff", "inf.tiff", _float_tiff(np.inf), "inf.tiff: the image holds NaN or infinite values"),
    ("a-folder-of-nothing", "d.npy", lambda p: p.mkdir() or p, "d.npy: no images or .npy arrays in this folder"),
    ("missing", "gone.png", lambda p: p, "gone.png: no such image file"),
]


@pytest.mark.parametrize("name,make,words", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_unusable_inputs_are_one_line(model, tmp_path, capfd, name, make, words):
    path = make(tmp_path / name)
    line = _one_line_error(capfd, [model, "--input", path])
    assert words in line, line


FIFO_WORDS = {"pipe.npy": "not a .npy array (a FIFO (named pipe), not a regular file)",
              "pipe.png": "a FIFO (named pipe), not a regular file; give a .npy array or an image file"}


@pytest.mark.parametrize("name", list(FIFO_WORDS))
def test_a_fifo_as_input_is_refused_not_waited_on(model, tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "cnnspec.cli", "run", str(model), "--input", str(fifo)],
                          capture_output=True, text=True, timeout=60, env=ENV)  # a hang fails here
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"cnnspec: error: {fifo}: {FIFO_WORDS[name]}"


def test_npy_inputs_are_checked_against_memory_with_the_figure(model, tmp_path, capfd, monkeypatch):
    path = tmp_path / "many.npy"
    np.save(path, np.zeros((4000, 1, 8, 8), np.uint8))  # 256 KB on disk, 1 MB as float32
    monkeypatch.setattr(cnnspec.graph.resources, "physical_memory", lambda: 1_500_000)
    line = _one_line_error(capfd, [model, "--input", path])
    assert line == (f"cnnspec: error: {path}: its [4000, 1, 8, 8] values as float32 need 1000.00 KiB, more than half "
                    f"of this machine's 1.43 MiB of memory; refused before allocating")


# ---------------------------------------------------------------- ONNX Runtime, NaN and JSON

def _tile_bomb(tmp_path: Path) -> Path:
    """A valid model whose one node asks ONNX Runtime for 256 TB when it runs."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1])
    repeats = numpy_helper.from_array(np.array([1, 1, 1_000_000, 1_000_000], np.int64), "repeats")
    nodes = [helper.make_node("Tile", ["input", "repeats"], ["tiled"]),
             helper.make_node("ReduceMean", ["tiled"], ["mean"], axes=[2, 3], keepdims=0),
             helper.make_node("Identity", ["mean"], ["output"])]
    graph = helper.make_graph(nodes, "bomb", [x], [y], [repeats])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "bomb.onnx"
    onnx.save(m, str(path))
    return path


def test_what_onnx_runtime_raises_while_running_is_one_line(model, x_npy, tmp_path, capfd):
    bomb = _tile_bomb(tmp_path)
    line = _one_line_error(capfd, [bomb, "--input", x_npy])
    assert line.startswith(f"cnnspec: error: {bomb}: ONNX Runtime failed while running it (")
    mismatch = _edited(model, tmp_path, meta={"cnnspec.input_shape": "[1, 9, 9]"}, open_dims=True)
    m = onnx.load(str(mismatch))
    del m.graph.value_info[:]
    onnx.save(m, str(mismatch))
    np.save(tmp_path / "x9.npy", np.zeros((1, 9, 9), np.float32))
    line = _one_line_error(capfd, [mismatch, "--input", tmp_path / "x9.npy"])
    assert line.startswith(f"cnnspec: error: {mismatch}: ONNX Runtime failed while running it (") and "Gemm" in line


def test_a_model_that_outputs_nan_is_refused_and_json_stays_json(model, x_npy, tmp_path, capfd):
    m = onnx.load(str(model))
    for t in m.graph.initializer:
        if t.name.endswith("weight"):
            t.CopyFrom(onnx.numpy_helper.from_array(np.full(onnx.numpy_helper.to_array(t).shape, np.nan, np.float32),
                                                    t.name))
    broken = tmp_path / "nan.onnx"
    onnx.save(m, str(broken))
    line = _one_line_error(capfd, [broken, "--input", x_npy, "--json"])
    assert line == (f"cnnspec: error: {broken}: the model's output for {x_npy}[0] holds NaN or infinite values "
                    f"(2 of 2 samples)")
    with pytest.raises(ValueError):
        output.to_json({"probability": math.nan})  # the last guard: never 'NaN' in --json
