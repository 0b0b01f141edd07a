"""``--weights`` in the formats people have: PyTorch state_dicts (read without PyTorch and without
unpickling) and ONNX initializers, made by the real libraries in the test, load into the matching spec
and give the source's outputs; a pickle that would run code is refused and nothing runs; every hostile
file is one line; a misfit lists its tensors with the closest names. Keras files: test_weight_formats_keras.py."""
from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

import cnnspec  # noqa: E402
from cnnspec.backend.weightfiles import READERS, open_weights, read_weights  # noqa: E402
from cnnspec.cli import main  # noqa: E402
from cnnspec.errors import InputError  # noqa: E402
from cnnspec.onnxfile.writer import write_onnx  # noqa: E402
from cnnspec.weights.match import MAX_LINES, compare  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "specs" / "digits.yaml"


@pytest.fixture(scope="module")
def digits():
    spec = cnnspec.load(DIGITS)
    module = spec.to("torch", seed=7)
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    return spec, module, x, expected


def onnx_outputs(graph, weights, x, tmp_path) -> np.ndarray:
    """The loaded weights run by another engine than the source's: our ONNX writer and ONNX Runtime."""
    path = tmp_path / "check.onnx"
    write_onnx(graph, weights, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def said():
    lines: list[str] = []
    return lines, lines.append


WRAPPINGS = {
    "plain.pth": (lambda sd: sd, []),
    "checkpoint.pt": (lambda sd: {"state_dict": sd, "epoch": 12, "best_acc": 0.97}, ["read the 'state_dict' entry"]),
    "model.bin": (lambda sd: {"model": sd, "optimizer": {"lr": 0.1}}, ["read the 'model' entry"]),
    "dataparallel.pth": (lambda sd: OrderedDict(("module." + k, v) for k, v in sd.items()),
                         ["dropped the 'module.' prefix"]),
    "both.pt": (lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}},
                ["read the 'state_dict' entry", "dropped the 'module.' prefix"]),
}


@pytest.mark.parametrize("name", sorted(WRAPPINGS))
def test_a_torch_state_dict_loads_and_gives_the_source_outputs(digits, tmp_path, name):
    spec, module, x, expected = digits
    wrap, notes = WRAPPINGS[name]
    torch.save(wrap(module.state_dict()), tmp_path / name)
    lines, say = said()
    weights = read_weights(tmp_path / name, spec.graph, say)
    assert list(weights) == list(cnnspec.weights.neutral.expected_weights(spec.graph))
    np.testing.assert_allclose(onnx_outputs(spec.graph, weights, x, tmp_path), expected, rtol=1e-5, atol=1e-5)
    assert len(lines) == len(notes) and all(note in line for note, line in zip(notes, lines))


def test_half_bfloat16_and_strided_tensors_are_read_as_pytorch_holds_them(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    state = {"t": base.t(), "view": base[1:3, ::2], "half": base.half(), "bf16": base.bfloat16(),
             "double": base.double(), "param": torch.nn.Parameter(base.clone())}
    torch.save(state, tmp_path / "w.pt")
    from cnnspec.weights.torchzip import open_torch

    found = open_torch(tmp_path / "w.pt")
    for key, tensor in state.items():
        assert found.tensors[key].shape == tuple(tensor.shape)
        np.testing.assert_array_equal(found.tensors[key].load(), tensor.detach().float().numpy()
                                      if key == "bf16" else tensor.detach().numpy())


def test_the_torch_reader_needs_no_torch(digits, tmp_path):
    """The core never imports a framework: the state_dict is read with torch unimportable."""
    spec, module, x, _ = digits
    torch.save({"state_dict": module.state_dict()}, tmp_path / "w.pth")
    code = ("import sys; sys.modules.update(torch=None, tensorflow=None, keras=None); "
            "import cnnspec; from cnnspec.backend.weightfiles import read_weights; "
            f"w = read_weights({str(tmp_path / 'w.pth')!r}, cnnspec.load({str(DIGITS)!r}).graph); "
            "print(len(w), float(w['fc2.bias'].sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = cnnspec.weights.neutral.expected_weights(spec.graph)
    assert out.stdout.split() == [str(len(expected)), str(float(module.state_dict()["fc2.bias"].numpy().sum()))]


class OpensAFile:
    """A classic pickle payload: unpickling it calls ``open(path, 'w')``, which creates the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class RunsAShell:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def torch_zip(data_pkl: bytes, storages: dict | None = None, name: str = "archive",
              compression: int = zipfile.ZIP_STORED) -> bytes:
    """A file laid out as torch.save lays it out, around any pickle."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        z.writestr(f"{name}/data.pkl", data_pkl)
        z.writestr(f"{name}/byteorder", "little")
        for key, raw in (storages or {}).items():
            z.writestr(f"{name}/data/{key}", raw)
        z.writestr(f"{name}/version", "3\n")
    return buf.getvalue()


@pytest.mark.parametrize("payload, protocol, named", [
    (OpensAFile, 2, "open"),    # torch.save's protocol: GLOBAL (io.open)
    (RunsAShell, 4, "system"),  # STACK_GLOBAL (posix.system)
])
def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(digits, tmp_path, payload, protocol, named):
    spec, module, _, _ = digits
    marker = tmp_path / "pwned"
    state = {**module.state_dict(), "fc2.bias": payload(marker)}
    path = tmp_path / "evil.pth"
    if protocol == 2:
        torch.save(state, path)  # the real torch.save, with a payload among the tensors
    else:
        path.write_bytes(torch_zip(pickle.dumps({"x": payload(marker)}, protocol=4)))
    with pytest.raises(InputError) as info:
        read_weights(path, spec.graph)
    assert f".{named}', which is not a tensor" in str(info.value) and "nothing in the file was run" in str(info.value)
    assert not marker.exists()
    out = tmp_path / "out"
    assert main(["build", str(DIGITS), "--weights", str(path), "-o", str(out), "--quiet"]) == 2
    assert not marker.exists() and not out.exists()
    # the payload is real: an unrestricted load runs it
    torch.load(path, weights_only=False) if protocol == 2 else pickle.loads(zipfile.ZipFile(path).read("archive/data.pkl"))
    assert marker.exists()


def test_a_pickled_module_is_refused_by_name(tmp_path, digits):
    spec, module, _, _ = digits
    torch.save(module, tmp_path / "whole.pt")
    with pytest.raises(InputError, match=r"refused: the pickle calls '[\w.]+'.*not a tensor"):
        read_weights(tmp_path / "whole.pt", spec.graph)


class _Storage:
    pass


def crafted(shape, stride, numel, held: int, dtype=None) -> bytes:
    """A torch.save-shaped file whose one tensor declares what the test says, made with the real
    rebuild function (pickled by reference, as torch.save does)."""
    storage = _Storage()

    class Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (storage, 0, shape, stride, False, OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", dtype or torch.FloatStorage, "0", "cpu", numel) if obj is storage else None

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump({"s.weight": Tensor()})
    return torch_zip(buf.getvalue(), {"0": b"\0" * held})


def zip_with(entries: dict, links: tuple = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw in entries.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = 0o120777 << 16
            z.writestr(info, raw)
    return buf.getvalue()


def hostile_cases(module):
    good = io.BytesIO()
    torch.save(module.state_dict(), good)
    real = good.getvalue()
    return {
        "truncated": (real[: len(real) // 2], "damaged zip archive"),
        "empty": (b"", "not a PyTorch zip file"),
        "huge-shape": (crafted((10 ** 12,), (1,), 4, 16), "more than the"),
        "past-its-storage": (crafted((10,), (1,), 4, 16), "reaches past its storage of 4 elements"),
        "storage-lies": (crafted((10,), (1,), 10, 16), "declares 10 elements but holds 16 bytes"),
        "negative-shape": (crafted((-1,), (1,), 4, 16), "not a short tuple of non-negative integers"),
        "integer-weights": (crafted((10,), (1,), 10, 80, torch.LongStorage), "holds int64, not floating-point"),
        "traversal": (zip_with({"a/data.pkl": b"", "../../etc/evil": b"x"}), "outside the archive"),
        "symlink": (zip_with({"a/data.pkl": b"", "a/data/0": b"/etc/passwd"}, links=("a/data/0",)), "symbolic link"),
        "no-pickle": (zip_with({"a/readme": b"hi"}), "no single data.pkl"),
        "broken-pickle": (torch_zip(b"\x80\x02}q\x00(X\x03"), "damaged pickle"),
        "not-a-dict": (torch_zip(pickle.dumps([1, 2], protocol=2)), "holds a list, not a state_dict"),
        "dict-without-tensors": (torch_zip(pickle.dumps({"epoch": 3}, protocol=2)), "a dict without tensors"),
        "compressed": (torch_zip(pickle.dumps({}, protocol=2), compression=zipfile.ZIP_DEFLATED), "is compressed"),
        "zip-magic-only": (b"PK\x03\x04" + b"\0" * 40, "damaged zip archive"),
    }


@pytest.mark.parametrize("case", ["truncated", "empty", "huge-shape", "past-its-storage", "storage-lies",
                                  "negative-shape", "integer-weights", "traversal", "symlink", "no-pickle",
                                  "broken-pickle", "not-a-dict", "dict-without-tensors", "compressed",
                                  "zip-magic-only"])
def test_a_hostile_torch_file_is_one_line_and_writes_nothing(digits, tmp_path, capsys, case):
    spec, module, _, _ = digits
    raw, message = hostile_cases(module)[case]
    path = tmp_path / "w.pt"
    path.write_bytes(raw)
    text = json.dumps({"cnnspec": 1, "name": "one", "input": [10, 2, 2], "layers": [{"scale": None, "name": "s"}]})
    (tmp_path / "one.yaml").write_text(text)
    one = cnnspec.loads(text).graph
    with pytest.raises(InputError) as info:
        read_weights(path, one)
    assert message in str(info.value) and "\n" not in str(info.value) and str(info.value).startswith(str(path))
    out = tmp_path / "out"
    assert main(["build", str(tmp_path / "one.yaml"), "--weights", str(path), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and not out.exists()


def test_onnx_initializers_load_by_name_and_give_the_source_outputs(digits, tmp_path):
    """A model.onnx from our own writer (weights of the torch build) carries the weights back."""
    spec, module, x, expected = digits
    weights = spec.to("torch", seed=7)  # the same numbers, by another route: the backend's get_weights
    from cnnspec.backend.plugins import load_backend

    neutral = load_backend("torch").get_weights(weights, spec.graph)
    write_onnx(spec.graph, neutral, tmp_path / "source.onnx")
    lines, say = said()
    loaded = read_weights(tmp_path / "source.onnx", spec.graph, say)
    rebuilt = spec.to("torch", weights=loaded)
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(torch.from_numpy(x)).numpy(), expected, rtol=1e-5, atol=1e-5)
    session = ort.InferenceSession(str(tmp_path / "source.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_onnx_graph_constants_are_left_out_and_said(tmp_path):
    """relu6's Clip bounds and Pad's int64 pads are initializers, not weights."""
    graph = cnnspec.loads(json.dumps({"cnnspec": 1, "name": "c", "input": [2, 6, 6], "layers": [
        {"conv2d": {"filters": 3, "kernel": 3, "padding": 1}, "name": "conv"}, "relu6",
        {"zeropad2d": 1}, {"crop2d": 1}, {"global_avgpool2d": None}, {"dense": 2, "name": "fc"}]})).graph
    weights = {k: np.full(s, 0.5, np.float32) for k, s in cnnspec.weights.neutral.expected_weights(graph).items()}
    write_onnx(graph, weights, tmp_path / "c.onnx")
    lines, say = said()
    loaded = read_weights(tmp_path / "c.onnx", graph, say)
    assert sorted(loaded) == sorted(weights) and len(lines) == 1 and "graph constants" in lines[0]


def test_hostile_onnx_files_are_one_line(digits, tmp_path):
    spec, module, _, _ = digits
    from cnnspec.backend.plugins import load_backend

    write_onnx(spec.graph, load_backend("torch").get_weights(module, spec.graph), tmp_path / "ok.onnx")
    raw = (tmp_path / "ok.onnx").read_bytes()
    import onnx

    model = onnx.load(str(tmp_path / "ok.onnx"))
    model.graph.initializer[0].dims[0] = 10 ** 9  # declares far more than it holds
    lying = model.SerializeToString()
    for data, message in [(raw[: len(raw) // 3], "not an ONNX model"), (lying, "more than the")]:
        (tmp_path / "bad.onnx").write_bytes(data)
        with pytest.raises(InputError, match=message) as info:
            read_weights(tmp_path / "bad.onnx", spec.graph)
        assert "\n" not in str(info.value)
    model = onnx.load(str(tmp_path / "ok.onnx"))
    model.graph.initializer[0].dims[0] = 31  # a different shape than the bytes hold, and than the spec's
    (tmp_path / "bad.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(InputError, match=r"1 tensor wrongly shaped\n  shape      conv1.weight: \[31, 1, 3, 3\]"):
        read_weights(tmp_path / "bad.onnx", spec.graph)
    model = onnx.load(str(tmp_path / "ok.onnx"))
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data",
                    size_threshold=0)
    with pytest.raises(InputError, match="is kept in external data, which cnnspec does not read for weights"):
        read_weights(tmp_path / "ext.onnx", spec.graph)


BN_OFF = {"cnnspec": 1, "name": "bnoff", "input": [3, 4, 4], "layers": [
    {"conv2d": {"filters": 4, "kernel": 3, "bias": False}, "name": "conv"},
    {"batchnorm": {"scale": False}, "name": "bn"}, {"flatten": None}, {"dense": 2, "name": "fc"}]}


def test_a_weight_the_spec_turned_off_names_the_switch(tmp_path):
    """Issue 19's message fix: bn.weight for a batchnorm with `scale: false` names the cause, and
    counts in good grammar."""
    graph = cnnspec.loads(json.dumps(BN_OFF)).graph
    source = torch.nn.ModuleDict({"conv": torch.nn.Conv2d(3, 4, 3, bias=False), "bn": torch.nn.BatchNorm2d(4),
                                  "fc": torch.nn.Linear(16, 2)})
    torch.save(source.state_dict(), tmp_path / "w.pth")
    with pytest.raises(InputError) as info:
        read_weights(tmp_path / "w.pth", graph)
    lines = str(info.value).splitlines()
    assert lines == [f"{tmp_path / 'w.pth'}: does not fit spec 'bnoff': 1 tensor unexpected",
                     "  unexpected bn.weight [4]: layer 'bn' is a batchnorm with `scale: false`, which holds no "
                     "weight (set `scale: true` or drop it)"]


def test_a_misfit_lists_each_tensor_with_the_closest_name_then_a_count(digits, tmp_path, capsys):
    spec, module, _, _ = digits
    state = module.state_dict()
    renamed = {k.replace("bn", "batchnorm") if k.startswith("bn1") else k: v for k, v in state.items()}
    renamed["fc1.weight"] = renamed["fc1.weight"][:, :512]
    del renamed["fc2.bias"], renamed["conv2.weight"]
    torch.save(renamed, tmp_path / "w.pth")
    out = tmp_path / "out"
    assert main(["build", str(DIGITS), "--weights", str(tmp_path / "w.pth"), "-o", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].endswith("does not fit spec 'digits': 6 tensors missing, 4 tensors unexpected, "
                             "1 tensor wrongly shaped")
    assert "  missing    bn1.weight [32] (closest in the file: batchnorm1.weight)" in lines
    assert "  missing    fc2.bias [10]" in lines
    assert lines[1] == "  shape      fc1.weight: [128, 512] in the file, the spec needs [128, 1024]"
    assert "  unexpected batchnorm1.running_mean [32] (closest in the spec: bn1.running_mean)" in lines
    assert "  missing    conv2.weight [64, 32, 3, 3]" in lines  # no name of its shape, none close enough alone
    assert len(lines) == 1 + MAX_LINES + 1 and lines[-1] == "  ... and 1 more"
    assert not out.exists()


def test_the_comparison_is_one_function_a_partial_load_can_reuse():
    c = compare({"a.weight": (2,), "b.weight": (3,), "stray": (1,), "x.num_batches_tracked": ()},
                {"a.weight": (2,), "b.weight": (4,), "c.weight": (5,)})
    assert c.matched == ("a.weight",) and [m.key for m in c.missing] == ["c.weight"]
    assert [m.key for m in c.unexpected] == ["stray"] and [(m.key, m.found, m.needed) for m in c.misshapen] == [
        ("b.weight", (3,), (4,))]
    assert not c.fits


def test_every_format_has_one_reader_picked_by_suffix(tmp_path):
    suffixes = [s for r in READERS for s in r.suffixes]
    assert len(suffixes) == len(set(suffixes))
    assert {".safetensors", ".pt", ".pth", ".bin", ".weights.h5", ".h5", ".keras", ".onnx"} <= set(suffixes)
    (tmp_path / "w.pkl").write_bytes(b"x")
    with pytest.raises(InputError, match=r"not a weights format cnnspec reads; it reads \.safetensors"):
        read_weights(tmp_path / "w.pkl", cnnspec.loads(json.dumps(BN_OFF)).graph)


def test_convert_and_train_init_read_a_state_dict(digits, tmp_path, capsys):
    spec, module, _, _ = digits
    torch.save({"model": module.state_dict()}, tmp_path / "w.pth")
    assert main(["convert", str(DIGITS), "--weights", str(tmp_path / "w.pth"), "--to", "keras"]) == 0
    err = capsys.readouterr().err
    assert "read the 'model' entry" in err and (tmp_path / "w.keras.safetensors").exists()
    assert main(["build", str(DIGITS), "--weights", str(tmp_path / "w.keras.safetensors"), "-o",
                 str(tmp_path / "b"), "--quiet"]) == 0
    built = read_weights(tmp_path / "b" / "weights.safetensors", spec.graph)
    for key, value in module.state_dict().items():
        if key in built:
            np.testing.assert_array_equal(built[key], value.numpy())


@pytest.mark.slow
def test_train_init_reads_a_state_dict(digits, tmp_path, capsys):
    spec, module, _, _ = digits
    torch.save({"state_dict": module.state_dict()}, tmp_path / "w.pth")
    assert main(["train", str(DIGITS), "--data", "digits", "--epochs", "1", "-o", str(tmp_path / "run"),
                 "--init", str(tmp_path / "w.pth")]) == 0
    assert "read the 'state_dict' entry" in capsys.readouterr().err


@pytest.mark.slow
def test_a_resnet18_state_dict_loads_and_gives_the_source_outputs(tmp_path):
    spec = cnnspec.load(ROOT / "specs" / "resnet18.yaml")
    module = spec.to("torch", seed=1)
    torch.save(module.state_dict(), tmp_path / "resnet18.pth")  # torchvision's keys: layer1.0.conv1.weight, ...
    x = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    weights = read_weights(tmp_path / "resnet18.pth", spec.graph)
    got = onnx_outputs(spec.graph, weights, x, tmp_path)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_a_mutated_state_dict_pickle_is_an_input_error_or_a_state_dict(digits, tmp_path):
    """Hundreds of damaged pickles: each is refused in one line or read as a state_dict; nothing else."""
    spec, module, _, _ = digits
    buf = io.BytesIO()
    torch.save({"state_dict": OrderedDict(list(module.state_dict().items())[:4])}, buf)
    real = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    prefix = real.namelist()[0].split("/")[0]
    pkl = real.read(f"{prefix}/data.pkl")
    storages = {n.rsplit("/", 1)[1]: real.read(n) for n in real.namelist() if "/data/" in n}
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(300):
        mutated = bytearray(pkl)
        for _ in range(int(rng.integers(1, 4))):
            mutated[int(rng.integers(0, len(mutated)))] = int(rng.integers(0, 256))
        if i % 3 == 0:
            mutated = mutated[: int(rng.integers(1, len(mutated)))]
        path = tmp_path / f"m{i}.pt"
        path.write_bytes(torch_zip(bytes(mutated), storages))
        try:
            found = open_weights(path, spec.graph)
            for stored in found.tensors.values():
                stored.load()
            outcomes.add("read")
        except InputError as exc:
            assert "\n" not in str(exc)
            outcomes.add("refused")
    assert outcomes == {"read", "refused"}


def test_a_partial_load_takes_what_matches_and_reports_the_rest(digits, tmp_path):
    """For train --init --allow-partial (issue 21): a new head is left out, the backbone comes in."""
    from cnnspec.backend.weightfiles import read_matching

    spec, module, _, _ = digits
    torch.save(module.state_dict(), tmp_path / "w.pth")
    text = DIGITS.read_text().replace("{dense: 10, name: fc2}", "{dense: 5, name: fc2}")
    five = cnnspec.loads(text.replace('classes: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]', "")).graph
    arrays, comparison = read_matching(tmp_path / "w.pth", five)
    assert [(m.key, m.found, m.needed) for m in comparison.misshapen] == [
        ("fc2.weight", (10, 128), (5, 128)), ("fc2.bias", (10,), (5,))]
    assert sorted(arrays) == sorted(k for k in cnnspec.weights.neutral.expected_weights(five) if not k.startswith("fc2"))
    np.testing.assert_array_equal(arrays["conv1.weight"], module.state_dict()["conv1.weight"].numpy())


def test_initializers_of_a_torch_onnx_export_load_by_name(tmp_path):
    """A file that no part of cnnspec wrote: PyTorch's own ONNX exporter names initializers by state_dict key."""
    spec = cnnspec.load(ROOT / "specs" / "lenet-5.yaml")
    module = spec.to("torch", seed=2)
    x = np.random.default_rng(1).normal(size=(2, 1, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.from_numpy(x),), str(tmp_path / "lenet.onnx"), dynamo=False)
    weights = read_weights(tmp_path / "lenet.onnx", spec.graph)
    np.testing.assert_allclose(onnx_outputs(spec.graph, weights, x, tmp_path), expected, rtol=1e-5, atol=1e-5)


def test_the_comparison_partitions_every_name():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    names = st.sampled_from(["a.weight", "a.bias", "b.weight", "bn.running_var", "bn.num_batches_tracked", "c.w"])
    shapes = st.sampled_from([(1,), (2,), (2, 3)])

    @settings(max_examples=200, deadline=None)
    @given(st.dictionaries(names, shapes), st.dictionaries(names, shapes))
    def check(found, expected):
        c = compare(found, expected)
        assert set(c.matched) | {m.key for m in c.missing + c.misshapen} == set(expected)
        assert {m.key for m in c.unexpected} == {k for k in found if k not in expected
                                                   and not k.endswith("num_batches_tracked")}
        assert c.fits == (set(c.matched) == set(expected) and not c.unexpected)
        for m in c.missing + c.unexpected:
            assert m.closest is None or (m.closest in found if m.kind == "missing" else m.closest in expected)
    check()


@pytest.mark.parametrize("pkl, message", [
    (b"cos\nsystem\n(S'touch pwned'\ntR.", "calls 'os.system'"),                                  # GLOBAL
    (b"(Vtouch pwned\nios\nsystem\n.", "uses the opcode INST"),                                  # INST imports
    (b"(ccollections\nOrderedDict\no.", "uses the opcode OBJ"),
    (b"\x80\x02ctorch\nFloatStorage\n)R.", "not one of PyTorch's tensor functions"),              # call a marker
    (b"\x80\x02ccollections\nOrderedDict\n)\x81.", "uses the opcode NEWOBJ"),
    (b"\x80\x02\x82\x01.", "uses the opcode EXT1"),                                              # copyreg registry
    (b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\n(ccollections\nOrderedDict\nctorch\nTensor\n)}tR.",
     "rebuilt by something other than PyTorch's tensor functions"),
    (b"\x80\x02}(]]u.", "uses a dict or list as a key"),
    (b"\x80\x02h\x05.", "reads memo slot 5, which it never wrote"),
], ids=["global", "inst", "obj", "call-a-storage-class", "newobj", "ext1", "from-type", "list-key", "memo"])
def test_each_way_a_pickle_could_reach_code_is_refused(tmp_path, pkl, message):
    path = tmp_path / "w.pt"
    path.write_bytes(torch_zip(pkl))
    graph = cnnspec.loads(json.dumps(BN_OFF)).graph
    with pytest.raises(InputError, match=message) as info:
        read_weights(path, graph)
    assert "\n" not in str(info.value)
    assert not (Path.cwd() / "pwned").exists()


def test_a_file_without_a_known_suffix_is_recognised_by_its_first_bytes(digits, tmp_path):
    """Lightning's .ckpt is a torch.save zip; an unnamed file may be safetensors: read by content, never run."""
    spec, module, _, _ = digits
    torch.save({"state_dict": module.state_dict(), "epoch": 3}, tmp_path / "last.ckpt")
    from cnnspec.weights.safetensors_io import write_weights

    weights = read_weights(tmp_path / "last.ckpt", spec.graph)
    write_weights(tmp_path / "plain", weights, spec.graph)
    again = read_weights(tmp_path / "plain", spec.graph)
    assert all(np.array_equal(again[k], weights[k]) for k in weights)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a weights format cnnspec reads"):
        read_weights(tmp_path / "notes.txt", spec.graph)


def test_the_library_face_reads_every_format_too(digits, tmp_path):
    spec, module, x, expected = digits
    torch.save({"model": module.state_dict()}, tmp_path / "w.pth")
    rebuilt = spec.to("torch", weights=tmp_path / "w.pth")
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(torch.from_numpy(x)).numpy(), expected, rtol=1e-6, atol=1e-6)
