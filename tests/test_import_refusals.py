"""`cnnspec import` on what the language cannot express and on hostile files: one line naming the node,
its op type, its inputs' shapes and the nearest supported form (or the file's problem), exit 1 or 2,
no traceback, and nothing written."""
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnspec.errors import CnnspecError, InputError  # noqa: E402
from cnnspec.importer.model import import_onnx  # noqa: E402
from cnnspec.importer.reader import Refusal  # noqa: E402

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 8, 8])


def model(nodes, outputs, inits=(), inputs=(X,), opset=17, check=False):
    graph = helper.make_graph(nodes, "g", list(inputs), outputs, initializer=list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    if check:
        onnx.checker.check_model(m)
    return m


def out(name="y", shape=None):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def save(tmp_path, m, name="m.onnx"):
    path = tmp_path / name
    path.write_bytes(m.SerializeToString())
    return path


def lstm():
    w = const("W", np.zeros((1, 16, 192)), np.float32)
    r = const("R", np.zeros((1, 16, 4)), np.float32)
    return model([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
                  helper.make_node("Unsqueeze", ["f", "ax"], ["s"], name="seq"),
                  helper.make_node("LSTM", ["s", "W", "R"], ["y"], name="rnn", hidden_size=4)],
                 [out()], [w, r, const("ax", [0])])


def loop():
    body = helper.make_graph([helper.make_node("Identity", ["cond"], ["cond_out"]),
                              helper.make_node("Identity", ["v"], ["v_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    return model([helper.make_node("Relu", ["x"], ["r"], name="relu"),
                  helper.make_node("Loop", ["n", "", "r"], ["y"], name="repeat_me", body=body)],
                 [out()], [const("n", 3)])


def nhwc():
    return model([helper.make_node("Transpose", ["x"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
                  helper.make_node("Relu", ["t"], ["y"], name="relu")], [out()])


def nonzero():
    return model([helper.make_node("NonZero", ["x"], ["i"], name="where"),
                  helper.make_node("Cast", ["i"], ["y"], name="cast", to=1)], [out()])


def sub_layers():
    return model([helper.make_node("Relu", ["x"], ["a"], name="a"),
                  helper.make_node("Sub", ["x", "a"], ["y"], name="diff")], [out()])


def tiled_map(axis):
    """Unsqueeze -> Tile x2 -> Reshape to [1, 3, 16, 8]: rows repeated (axis 3: an upsampling, the
    positive control) or the whole map stacked twice (axis 2: the same shapes, not an upsampling)."""
    reps = [1, 1, 1, 1, 1]
    reps[axis] = 2
    return model([helper.make_node("Unsqueeze", ["x", "ax"], ["u"], name="unsq"),
                  helper.make_node("Tile", ["u", "reps"], ["t"], name="tile"),
                  helper.make_node("Reshape", ["t", "shape"], ["y"], name="back")],
                 [out()], [const("ax", [axis]), const("reps", reps), const("shape", [0, 3, 16, 8])])


REFUSALS = {  # model, what the message names
    "stacked, not repeated": (lambda: tiled_map(2), ["'tile' (Tile)", "u [1, 3, 1, 8, 8]", "UpSampling2D"]),
    "lstm": (lstm, ["'rnn' (LSTM)", "s [1, 1, 192]", "recurrent"]),
    "loop": (loop, ["'repeat_me' (Loop)", "unroll"]),
    "nhwc": (nhwc, ["'to_nhwc' (Transpose)", "x [1, 3, 8, 8]", "NCHW", "inputs-as-nchw"]),
    "dynamic": (nonzero, ["'where' (NonZero)", "dynamic shape", "fixed input size"]),
    "sub": (sub_layers, ["'diff' (Sub)", "x [1, 3, 8, 8], a [1, 3, 8, 8]", "supported:"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_form_outside_the_language_is_one_error_naming_the_node(case, tmp_path):
    make, words = REFUSALS[case]
    path = save(tmp_path, make())
    with pytest.raises(Refusal) as info:
        import_onnx(path)
    text = str(info.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_rows_repeated_by_unsqueeze_tile_reshape_are_an_upsampling(tmp_path):
    imported = import_onnx(save(tmp_path, tiled_map(3)), flat=True)
    assert [(n.op, n.attrs["scale"]) for n in imported.graph.nodes] == [("upsample2d", (2, 1))]


def test_an_input_with_dynamic_height_and_width_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, "h", "w"])
    path = save(tmp_path, model([helper.make_node("Relu", ["x"], ["y"])], [out()], inputs=(x,)))
    with pytest.raises(InputError, match="dimension 2 is 'h'.*fixed input size"):
        import_onnx(path)


def hostile_cases(tmp_path):
    good = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3])],
                 [out()], [const("w", np.zeros((4, 3, 3, 3)), np.float32)])
    blob = good.SerializeToString()
    huge = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [out()], check=False)
    t = huge.graph.initializer.add()
    t.name, t.data_type = "w", TensorProto.FLOAT
    t.dims.extend([1_000_000, 1_000_000, 3, 3])
    short = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [out()], check=False)
    t = short.graph.initializer.add()
    t.name, t.data_type, t.raw_data = "w", TensorProto.FLOAT, b"\0" * 8
    t.dims.extend([4, 3, 3, 3])
    cycle = model([helper.make_node("Add", ["x", "b"], ["a"], name="first"),
                   helper.make_node("Relu", ["a"], ["b"], name="second"),
                   helper.make_node("Relu", ["b"], ["y"], name="last")], [out()], check=False)
    missing = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [out()], check=False)
    outside = model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], [out()], check=False)
    t = outside.graph.initializer.add()
    t.name, t.data_type, t.data_location = "w", TensorProto.FLOAT, TensorProto.EXTERNAL
    t.dims.extend([4, 3, 3, 3])
    entry = t.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    custom = model([helper.make_node("Evil", ["x"], ["y"], name="evil", domain="com.example")], [out()],
                   check=False)
    wide = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10_000_000, 10_000_000])
    huge_input = model([helper.make_node("Relu", ["x"], ["y"])], [out()], inputs=(wide,))
    nothing = model([helper.make_node("Identity", ["x"], ["y"], name="same")], [out()])
    return {
        "huge input": (huge_input.SerializeToString(), "dimension 2 is 10000000"),
        "computes nothing": (nothing.SerializeToString(), "computed by no layer"),
        "truncated": (blob[: len(blob) // 2], "not an ONNX model"),
        "empty": (b"", "not an ONNX model"),
        "huge dims": (huge.SerializeToString(), "more than"),
        "short data": (short.SerializeToString(), "does not hold the data"),
        "cycle": (cycle.SerializeToString(), "cycle"),
        "missing initializer": (missing.SerializeToString(), "reads 'w', which no node, initializer or input"),
        "external data outside": (outside.SerializeToString(), "outside the model's folder"),
        "custom domain": (custom.SerializeToString(), "custom domain 'com.example'"),
    }


def test_hostile_files_are_one_line_errors(tmp_path):
    for case, (blob, words) in hostile_cases(tmp_path).items():
        path = tmp_path / f"{case.replace(' ', '_')}.onnx"
        path.write_bytes(blob)
        with pytest.raises(CnnspecError) as info:
            import_onnx(path)
        assert words in str(info.value) and "\n" not in str(info.value), (case, str(info.value))


def test_the_command_writes_nothing_on_a_refusal_and_says_one_line(tmp_path):
    path = save(tmp_path, lstm())
    spec, weights = tmp_path / "out.yaml", tmp_path / "out.safetensors"
    done = subprocess.run([sys.executable, "-m", "cnnspec", "import", str(path), "-o", str(spec), "--weights",
                           str(weights)], capture_output=True, text=True)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "LSTM" in done.stderr and "Traceback" not in done.stderr
    assert not spec.exists() and not weights.exists()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    done = subprocess.run([sys.executable, "-m", "cnnspec", "import", str(bad), "-o", str(spec)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not spec.exists()
    done = subprocess.run([sys.executable, "-m", "cnnspec", "import", str(bad), "-o", str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "overwrite" in done.stderr
