"""``--weights`` with Keras files made by Keras itself (``save_weights`` to ``.weights.h5``, ``save`` to
``.keras`` and to legacy ``.h5``), read with h5py alone: they load into the matching spec and give
the Keras model's outputs; a misfit is named in Keras' names; hostile files are one line."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
ort = pytest.importorskip("onnxruntime")

import cnnspec  # noqa: E402
from cnnspec.backend.weightfiles import read_weights  # noqa: E402
from cnnspec.cli import main  # noqa: E402
from cnnspec.errors import InputError  # noqa: E402
from cnnspec.onnxfile.writer import write_onnx  # noqa: E402
from cnnspec.weights.neutral import expected_weights  # noqa: E402

pytestmark = [pytest.mark.keras, pytest.mark.xdist_group("keras")]
ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "specs" / "digits.yaml"
SAVES = {
    "model.weights.h5": lambda model, path: model.save_weights(path),
    "model.keras": lambda model, path: model.save(path),
    "legacy.h5": lambda model, path: model.save(path),  # Keras' legacy HDF5: layer_names, weight_names
}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras-files")
    spec = cnnspec.load(DIGITS)
    model = spec.to("keras", seed=5)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # batchnorm statistics that are not 0 and 1, so their order matters
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma + rng.normal(size=gamma.shape), rng.normal(size=beta.shape),
                               rng.normal(size=mean.shape), rng.uniform(0.5, 2, size=var.shape)])
    x = rng.normal(size=(3, 1, 8, 8)).astype(np.float32)
    expected = np.asarray(model(x, training=False))
    for name, save in SAVES.items():
        save(model, str(folder / name))
    return spec, folder, x, expected


def ort_outputs(graph, weights, x, tmp_path) -> np.ndarray:
    write_onnx(graph, weights, tmp_path / "check.onnx")
    session = ort.InferenceSession(str(tmp_path / "check.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("name", sorted(SAVES))
def test_a_keras_file_loads_and_gives_the_keras_outputs(digits, tmp_path, name):
    spec, folder, x, expected = digits
    weights = read_weights(folder / name, spec.graph)
    assert list(weights) == list(expected_weights(spec.graph))
    np.testing.assert_allclose(ort_outputs(spec.graph, weights, x, tmp_path), expected, rtol=1e-4, atol=1e-5)


def test_build_and_convert_read_keras_files(digits, tmp_path):
    spec, folder, x, expected = digits
    assert main(["build", str(DIGITS), "--backend", "torch", "--weights", str(folder / "model.keras"),
                 "-o", str(tmp_path / "b"), "--quiet"]) == 0
    session = ort.InferenceSession(str(tmp_path / "b" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-4, atol=1e-5)
    out = tmp_path / "w.safetensors"
    assert main(["convert", str(DIGITS), "--weights", str(folder / "model.weights.h5"), "--to", "torch",
                 "-o", str(out), "--quiet"]) == 0
    np.testing.assert_allclose(ort_outputs(spec.graph, read_weights(out, spec.graph), x, tmp_path), expected,
                               rtol=1e-4, atol=1e-5)


def test_a_keras_misfit_is_named_in_keras_names_with_the_switch_that_explains_it(digits, tmp_path):
    spec, folder, _, _ = digits
    text = DIGITS.read_text().replace("{batchnorm: {}, name: bn1}", "{batchnorm: {scale: false}, name: bn1}")
    text = text.replace("name: fc2}", "name: fc_2}")
    other = cnnspec.loads(text).graph
    with pytest.raises(InputError) as info:
        read_weights(folder / "model.weights.h5", other)
    lines = str(info.value).splitlines()
    assert lines[0].endswith("does not fit spec 'digits' (in Keras' layout): 2 tensors missing, "
                             "3 tensors unexpected")
    assert "  missing    fc_2.kernel [128, 10] (closest in the file: fc2.kernel)" in lines
    assert ("  unexpected bn1.gamma [32]: layer 'bn1' is a batchnorm with `scale: false`, which holds no gamma "
            "(set `scale: true` or drop it)") in lines


def h5_file(build) -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def keras_zip(entries: dict, links: tuple = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw in entries.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = 0o120777 << 16
            z.writestr(info, raw)
    return buf.getvalue()


def _external_link(f):
    f.create_group("layers/conv/vars").attrs["name"] = "conv1"
    f["layers/conv/vars/0"] = h5py.ExternalLink("/etc/passwd", "/x")


def _strings(f):
    f.create_group("layers/conv/vars").attrs["name"] = "conv1"
    f["layers/conv/vars/0"] = np.array([b"a", b"b"], dtype=object).astype("S1")


def _huge(f):
    f.create_group("layers/conv/vars").attrs["name"] = "conv1"
    f.create_dataset("layers/conv/vars/0", shape=(10 ** 6, 10 ** 6), dtype="f4", chunks=(1, 1024), compression="gzip")


HOSTILE = {
    "truncated.weights.h5": (lambda folder: (folder / "model.weights.h5").read_bytes()[:3000], "a damaged HDF5 file"),
    "garbage.h5": (lambda folder: b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "a damaged HDF5 file"),
    "not-hdf5.weights.h5": (lambda folder: b"PK\x03\x04zip", "not an HDF5 file"),
    "empty.h5": (lambda folder: h5_file(lambda f: f.create_group("x")), "without Keras weights"),
    "link.weights.h5": (lambda folder: h5_file(_external_link), "is a link (ExternalLink); refused"),
    "strings.weights.h5": (lambda folder: h5_file(_strings), "not numbers"),
    "huge.weights.h5": (lambda folder: h5_file(_huge), "more than the"),
    "traversal.keras": (lambda folder: keras_zip({"../model.weights.h5": b"x"}), "outside the archive"),
    "symlink.keras": (lambda folder: keras_zip({"model.weights.h5": b"/etc/passwd"}, ("model.weights.h5",)),
                      "symbolic link"),
    "no-weights.keras": (lambda folder: keras_zip({"config.json": b"{}"}), "without model.weights.h5"),
    "truncated.keras": (lambda folder: (folder / "model.keras").read_bytes()[:200], "damaged zip archive"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_keras_file_is_one_line_and_writes_nothing(digits, tmp_path, capsys, name):
    spec, folder, _, _ = digits
    make, message = HOSTILE[name]
    path = tmp_path / name
    path.write_bytes(make(folder))
    with pytest.raises(InputError) as info:
        read_weights(path, spec.graph)
    assert message in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith(str(path))
    out = tmp_path / "out"
    assert main(["build", str(DIGITS), "--weights", str(path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and not out.exists()


def test_a_partial_load_of_a_keras_file_converts_what_matches(digits):
    from cnnspec.backend.weightfiles import read_matching

    spec, folder, _, _ = digits
    other = cnnspec.loads(DIGITS.read_text().replace("name: fc2}", "name: fc_2}")).graph
    arrays, comparison = read_matching(folder / "model.weights.h5", other)
    full = read_weights(folder / "model.weights.h5", spec.graph)
    assert sorted(m.key for m in comparison.missing) == ["fc_2.bias", "fc_2.kernel"]
    assert sorted(arrays) == sorted(k for k in full if not k.startswith("fc2."))
    for key, array in arrays.items():
        np.testing.assert_array_equal(array, full[key])


def test_a_keras_2_style_h5_is_matched_by_its_weight_names(digits, tmp_path):
    """Keras 2's save_weights layout (``conv1/kernel:0``), its weight_names listed out of order: each
    tensor goes where its name says."""
    spec, folder, x, expected = digits
    model = spec.to("keras", weights=read_weights(folder / "model.weights.h5", spec.graph))
    with h5py.File(tmp_path / "keras2.h5", "w") as f:
        f.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
        f.attrs["keras_version"], f.attrs["backend"] = b"2.15.0", b"tensorflow"
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{v.path.split('/')[-1]}:0" for v in layer.weights][::-1]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for name, value in zip(names[::-1], layer.get_weights()):
                group[name] = value
    weights = read_weights(tmp_path / "keras2.h5", spec.graph)
    np.testing.assert_allclose(ort_outputs(spec.graph, weights, x, tmp_path), expected, rtol=1e-4, atol=1e-5)


def test_keras_files_without_their_suffix_are_recognised_by_content(digits, tmp_path):
    spec, folder, _, _ = digits
    full = read_weights(folder / "model.weights.h5", spec.graph)
    for name in ("model.keras", "model.weights.h5"):
        (tmp_path / "unnamed").write_bytes((folder / name).read_bytes())
        again = read_weights(tmp_path / "unnamed", spec.graph)
        assert all(np.array_equal(again[k], full[k]) for k in full)
