"""``cnnspec quantize`` on damaged models: whatever the bytes, the answer is exit 0, 1 or 2 with at
most one line on stderr, never a traceback, an "internal error" or numpy's warnings. The cases a
fuzzer found are kept as named tests: metadata that is not UTF-8 (protobuf then hands out bytes),
and weights of NaN or infinity (numpy's warnings inside the quantiser, then a NaN-scaled file).
Scales that overflow inside the quantiser are one line too (quantizer.py turns numpy's warning into
the error)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from cnnspec.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--calibrate", "digits", "--samples", "8", "--speed-seconds", "0"]


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("digits")
    assert main(["build", str(ROOT / "specs" / "digits.yaml"), "--backend", "onnx", "-o", str(out), "--quiet"]) == 0
    return (out / "model.onnx").read_bytes()


def quantize(path: Path) -> tuple[object, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["quantize", str(path), *FAST, "-o", str(path.with_name("q.onnx"))])
    return code, err.getvalue()


def assert_one_line(code, err: str) -> None:
    lines = err.strip().splitlines()
    assert code in (0, 1, 2) and len(lines) <= 1, err
    assert "internal error" not in err and "Warning" not in err, err


MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=24)),
    st.tuples(st.just("zero"), st.floats(0, 1)),
)


def mutate(blob: bytes, mutation) -> bytes:
    kind, arg = mutation
    b = bytearray(blob)
    if kind == "truncate":
        return bytes(b[:int(arg * len(b))])
    if kind == "zero":
        i = int(arg * (len(b) - 1))
        b[i:i + 64] = bytes(len(b[i:i + 64]))
        return bytes(b)
    for where, value in arg:
        b[int(where * (len(b) - 1))] = value
    return bytes(b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=MUTATIONS)
def test_a_damaged_model_is_never_a_traceback(model_bytes, tmp_path, mutation):
    path = tmp_path / "m.onnx"
    path.write_bytes(mutate(model_bytes, mutation))
    assert_one_line(*quantize(path))


def _save(tmp_path, model) -> Path:
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_metadata_that_is_not_utf8_is_one_line(model_bytes, tmp_path):
    blob = bytearray(model_bytes)
    at = blob.index(b'["0", "1"')  # the class names in the metadata
    blob[at + 2] = 0xF3  # a lead byte with no continuation
    path = tmp_path / "m.onnx"
    path.write_bytes(bytes(blob))
    code, err = quantize(path)
    assert code == 2 and "metadata 'cnnspec.classes' holds text that is not valid UTF-8" in err
    assert main(["run", str(path), "--input", str(path)]) == 2  # every reader of models refuses it alike


@pytest.mark.parametrize("value, message", [
    (np.nan, "its output on a calibration image is not finite"),
    (np.inf, "its output on a calibration image is not finite"),
])
def test_weights_too_broken_for_int8_scales_are_one_line(model_bytes, tmp_path, value, message):
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model_bytes)
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    w = numpy_helper.to_array(weight).copy()
    w.flat[0] = value
    weight.CopyFrom(numpy_helper.from_array(w, weight.name))
    code, err = quantize(_save(tmp_path, model))
    assert_one_line(code, err)
    assert code == 2 and message in err


def test_overflow_inside_the_quantiser_is_one_line_and_writes_nothing(model_bytes, tmp_path, monkeypatch):
    import onnxruntime.quantization as ortq

    def overflowing(*args, **kwargs):
        return np.float32(3e38) * np.float32(10)  # what a weight scale times an input scale can do

    monkeypatch.setattr(ortq, "quantize_static", overflowing)
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes)
    code, err = quantize(path)
    assert code == 2 and "int8 scales cannot be computed (overflow" in err and "Warning" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def readers(tmp_path: Path, model: Path) -> list[list[str]]:
    """The other commands that read a model file: the same damage must be one line there too."""
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 1, 8, 8), np.float32))
    return [["run", str(model), "--input", str(x), "--json"], ["eval", str(model), "--data", "digits"],
            ["bench", str(model), "--seconds", "0.05", "--batch", "1"]]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=MUTATIONS, which=st.integers(0, 2))
def test_a_damaged_model_is_one_line_in_run_eval_and_bench(model_bytes, tmp_path, mutation, which):
    path = tmp_path / "m.onnx"
    path.write_bytes(mutate(model_bytes, mutation))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(readers(tmp_path, path)[which])
    assert_one_line(code, err.getvalue())


def test_eval_refuses_nan_scores_in_one_line(model_bytes, tmp_path):
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model_bytes)
    bias = next(t for t in model.graph.initializer if t.name.endswith("fc2.bias"))
    b = numpy_helper.to_array(bias).copy()
    b[0] = np.nan
    bias.CopyFrom(numpy_helper.from_array(b, bias.name))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["eval", str(_save(tmp_path, model)), "--data", "digits"])
    assert code == 2 and "holds NaN or infinite values for 359 of 359 held-out images" in err.getvalue()
