"""``cnnspec run``: the top classes from .npy arrays and images, --json, and one clear line (exit 2) for
every unusable model, input or provider."""
import json

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
from PIL import Image  # noqa: E402

import cnnspec
import cnnspec.files.images
from cnnspec import runner  # noqa: E402
from cnnspec.cli import main  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]

PROBS_SPEC = """cnnspec: 1
name: tiny-probs
input: [1, 6, 5]
classes: [cat, dog, hippopotamus]
layers:
  - conv2d: {filters: 2, kernel: 3, padding: same, activation: relu}
  - flatten
  - dense: {units: 3, activation: softmax}
  - dropout: 0.5
"""
LOGITS_SPEC = """cnnspec: 1
name: tiny-logits
input: [3, 4, 4]
layers:
  - conv2d: {filters: 2, kernel: 3}
  - global_avgpool2d
  - dense: 4
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, text in (("probs", PROBS_SPEC), ("logits", LOGITS_SPEC)):
        (root / f"{name}.yaml").write_text(text)
        assert main(["build", str(root / f"{name}.yaml"), "--backend", "torch", "--seed", "1",
                     "-o", str(root / name), "--quiet"]) == 0
        out[name] = root / name / "model.onnx"
    return out


def reference(model_path, x):
    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def run_json(capsys, *argv):
    code = main(["run", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def fails_with(capsys, argv, *fragments):
    code = main(["run", *map(str, argv)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    for fragment in fragments:
        assert fragment in captured.err, captured.err
    return captured.err


def test_npy_batch_top_classes_match_onnx_runtime(models, tmp_path, capsys):
    x = np.random.default_rng(0).random((4, 1, 6, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    doc = run_json(capsys, models["probs"], "--input", tmp_path / "x.npy", "--top", "2")
    probs = reference(models["probs"], x)
    assert doc["probabilities"] == "model" and doc["output_shape"] == [3]
    assert [r["index"] for r in doc["results"]] == [0, 1, 2, 3]
    labels = ["cat", "dog", "hippopotamus"]
    for r, p in zip(doc["results"], probs):
        order = np.argsort(-p, kind="stable")[:2]
        assert [t["class"] for t in r["top"]] == order.tolist()
        assert [t["label"] for t in r["top"]] == [labels[i] for i in order]
        np.testing.assert_allclose([t["probability"] for t in r["top"]], p[order], rtol=1e-6)


def test_logits_get_softmax_and_say_so(models, tmp_path, capsys):
    x = np.random.default_rng(1).random((3, 4, 4)).astype(np.float32)  # one sample, no batch axis
    np.save(tmp_path / "one.npy", x)
    doc = run_json(capsys, models["logits"], "--input", tmp_path / "one.npy", "--top", "9")
    logits = reference(models["logits"], x[None])[0].astype(np.float64)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    (result,) = doc["results"]
    assert doc["probabilities"] == "softmax" and result["index"] is None
    assert len(result["top"]) == 4 and all(t["label"] is None for t in result["top"])  # --top clipped to 4 classes
    np.testing.assert_allclose(sorted((t["probability"] for t in result["top"]), reverse=True),
                               sorted(expected, reverse=True), rtol=1e-6)
    assert main(["run", str(models["logits"]), "--input", str(tmp_path / "one.npy")]) == 0
    assert "softmax applied" in capsys.readouterr().out


def test_human_output_is_aligned_per_input(models, tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((2, 1, 6, 5), np.float32))
    assert main(["run", str(models["probs"]), "--input", str(tmp_path / "a.npy"), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("probabilities as the model outputs them")
    assert lines[2].endswith("a.npy[0]") and lines[6].endswith("a.npy[1]")
    rows = lines[3:6]
    assert [len(r) for r in rows] == [len(rows[0])] * 3  # labels padded to one width
    assert {r.split()[2] for r in rows} == {"cat", "dog", "hippopotamus"}


@pytest.mark.parametrize("mode, suffix", [("L", ".png"), ("RGB", ".jpg"), ("RGBA", ".png"), ("P", ".bmp")])
def test_images_are_resized_converted_and_scaled(models, tmp_path, capsys, mode, suffix):
    rng = np.random.default_rng(2)
    pixels = (rng.random((13, 9, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    path = tmp_path / f"img{suffix}"
    image.save(path)
    for model, channels, size in ((models["probs"], 1, (5, 6)), (models["logits"], 3, (4, 4))):
        doc = run_json(capsys, model, "--input", path)
        (result,) = doc["results"]
        assert result["input"] == str(path) and result["index"] is None
        with Image.open(path) as img:
            expected_in = np.asarray(img.convert("L" if channels == 1 else "RGB").resize(
                size, Image.Resampling.BILINEAR), np.float32) / 255.0
        x = expected_in[None, None] if channels == 1 else expected_in.transpose(2, 0, 1)[None]
        assert 0.0 <= x.min() and x.max() <= 1.0
        out = reference(model, np.ascontiguousarray(x))[0]
        assert result["top"][0]["class"] == int(np.argmax(out))


def test_16_bit_greyscale_is_scaled_by_its_own_range(models, tmp_path):
    Image.fromarray(np.full((12, 10), 65535, np.uint16)).save(tmp_path / "deep.png")
    x, samples = runner.load_inputs([str(tmp_path / "deep.png")], (1, 6, 5))
    assert x.shape == (1, 1, 6, 5) and len(samples) == 1
    np.testing.assert_allclose(x, 1.0, rtol=1e-6)
    rgb, _ = runner.load_inputs([str(tmp_path / "deep.png")], (3, 4, 4))
    assert rgb.shape == (1, 3, 4, 4) and np.allclose(rgb, 1.0)


def test_batch_size_does_not_change_results(models, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(3).random((5, 1, 6, 5)).astype(np.float32))
    one = run_json(capsys, models["probs"], "--input", tmp_path / "x.npy", "--batch-size", "1")
    many = run_json(capsys, models["probs"], "--input", tmp_path / "x.npy", "--batch-size", "2")
    assert one["results"] == many["results"]


def test_several_inputs_in_order(models, tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((1, 6, 5), np.float32))
    Image.fromarray(np.zeros((6, 5), np.uint8)).save(tmp_path / "b.png")
    np.save(tmp_path / "c.npy", np.ones((2, 1, 6, 5), np.float32))
    doc = run_json(capsys, models["probs"], "--input", tmp_path / "a.npy", tmp_path / "b.png", tmp_path / "c.npy")
    assert [(r["input"].rsplit("/", 1)[1], r["index"]) for r in doc["results"]] == [
        ("a.npy", None), ("b.png", None), ("c.npy", 0), ("c.npy", 1)]


# ---------------------------------------------------------------- one clear line, exit 2

def test_wrong_input_shape(models, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 6, 5), np.float32))
    fails_with(capsys, [models["probs"], "--input", tmp_path / "x.npy"], "x.npy", "[2, 3, 6, 5]", "[N, 1, 6, 5]")


@pytest.mark.parametrize("case", ["pickle", "text", "strings", "nan", "empty", "missing", "directory"])
def test_unusable_npy(models, tmp_path, capsys, case):
    path = tmp_path / "bad.npy"
    if case == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "text":
        path.write_text("not an array")
    elif case == "strings":
        np.save(path, np.array([["a"] * 5] * 6)[None])
    elif case == "nan":
        np.save(path, np.full((1, 6, 5), np.nan, np.float32))
    elif case == "empty":
        np.save(path, np.zeros((0, 1, 6, 5), np.float32))
    elif case == "directory":
        path.mkdir()
    err = fails_with(capsys, [models["probs"], "--input", path], "bad.npy")
    if case == "pickle":
        assert "never unpickles" in err


@pytest.mark.parametrize("case", ["not-an-image", "truncated", "bomb"])
def test_unusable_images(models, tmp_path, capsys, monkeypatch, case):
    path = tmp_path / "img.png"
    Image.fromarray((np.random.default_rng(4).random((64, 64)) * 255).astype(np.uint8)).save(path)
    if case == "not-an-image":
        path.write_bytes(b"hello, I am text")
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        monkeypatch.setattr(cnnspec.files.images, "MAX_IMAGE_PIXELS", 1000)
    err = fails_with(capsys, [models["probs"], "--input", path], "img.png")
    if case == "bomb":
        assert "decompression bomb" in err


def test_not_a_model(tmp_path, capsys):
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"\x00\x01garbage" * 10)
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 5), np.float32))
    fails_with(capsys, [bogus, "--input", tmp_path / "x.npy"], "model.onnx")
    fails_with(capsys, [tmp_path / "missing.onnx", "--input", tmp_path / "x.npy"], "missing.onnx")


def test_external_data_outside_the_folder_is_refused(models, tmp_path, capsys):
    import onnx

    model = onnx.load(str(models["probs"]))
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    tensor.ClearField("raw_data")
    (tmp_path / "m").mkdir()
    onnx.save_model(model, str(tmp_path / "m" / "model.onnx"))
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 5), np.float32))
    fails_with(capsys, [tmp_path / "m" / "model.onnx", "--input", tmp_path / "x.npy"], "outside", "refused")


def test_cuda_without_a_cuda_provider(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 5), np.float32))
    fails_with(capsys, [models["probs"], "--input", tmp_path / "x.npy", "--provider", "cuda"],
               "CUDAExecutionProvider", "--provider cpu")


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--top", "0")])
def test_bad_numbers(models, tmp_path, capsys, flag, value):
    np.save(tmp_path / "x.npy", np.zeros((1, 6, 5), np.float32))
    fails_with(capsys, [models["probs"], "--input", tmp_path / "x.npy", flag, value], flag)


def spec_meta(layers, blocks=None) -> dict:
    """Metadata as an export before ``cnnspec.output_op`` wrote it: the spec as JSON."""
    spec = {"cnnspec": 1, "name": "m", "input": [1, 4, 4], "layers": layers, **({"blocks": blocks} if blocks else {})}
    return {"cnnspec.spec": json.dumps(spec)}


HEAD_BLOCK = {"head": {"params": {"units": None}, "layers": ["flatten", {"dense": "$units"}, "softmax"]}}


def test_distribution_detection_reads_the_spec_in_the_metadata():
    ends = runner._ends_in_softmax
    assert ends(spec_meta(["flatten", "softmax", {"dropout": 0.5}])) is True
    assert ends(spec_meta(["flatten", {"dense": {"units": 3, "activation": "softmax"}}])) is True
    assert ends(spec_meta(["flatten", {"dense": 3}, "sigmoid"])) is False
    assert ends(spec_meta([{"head": {"units": 3}}, {"dropout": 0.2}], HEAD_BLOCK)) is True  # softmax inside a block
    assert ends({}) is None
    assert ends({"cnnspec.spec": json.dumps({"layers": ["softmax"]})}) is None  # not a spec: the numbers decide


def test_output_keys_come_before_the_spec():
    ends = runner._ends_in_softmax
    logits_spec = spec_meta(["flatten", {"dense": 3}])
    assert ends({**logits_spec, "cnnspec.output_op": "softmax", "cnnspec.output_activation": ""}) is True
    assert ends({**logits_spec, "cnnspec.output_op": "dense", "cnnspec.output_activation": "softmax"}) is True
    assert ends({**spec_meta(["flatten", "softmax"]), "cnnspec.output_op": "dense",
                 "cnnspec.output_activation": ""}) is False
    assert ends({"cnnspec.output_op": "softmax"}) is True  # no activation key: none


@pytest.mark.parametrize("value", ["[" * 1_000_000, "{" * 100_000, "[1, " * 300_000, "x" * (3 * 1024 ** 2), "\ud800",
                                   "cnnspec: 1\nlayers: *a"])
def test_hostile_metadata_means_not_said(value):
    meta = {"cnnspec.spec": value, "cnnspec.classes": value, "cnnspec.input_shape": value}
    assert runner._ends_in_softmax(meta) is None
    assert runner.classes(meta, 3) is None


def test_output_metadata_of_the_expanded_graph():
    from cnnspec.onnxfile.outputmeta import output_metadata

    def meta(layers, blocks=None):
        return output_metadata(cnnspec.loads(spec_meta(layers, blocks)["cnnspec.spec"]).graph)

    assert meta([{"head": {"units": 3}}, {"dropout": 0.2}], HEAD_BLOCK) == {
        "cnnspec.output_op": "softmax", "cnnspec.output_activation": ""}
    assert meta(["flatten", {"dense": {"units": 3, "activation": "softmax"}}, {"dropout": 0.5}]) == {
        "cnnspec.output_op": "dense", "cnnspec.output_activation": "softmax"}
    assert meta(["flatten", {"dense": 3}]) == {"cnnspec.output_op": "dense", "cnnspec.output_activation": ""}


BLOCK_SOFTMAX_SPEC = """cnnspec: 1
name: tiny-block-softmax
input: [1, 6, 5]
blocks:
  head:
    params: {units: null}
    layers:
      - flatten
      - dense: $units
      - softmax
layers:
  - conv2d: {filters: 2, kernel: 3, padding: same, activation: relu}
  - {head: {units: 3}, name: classifier}
  - dropout: 0.5
"""


def with_metadata(src, dst, **changes):
    """A copy of the model at ``src`` with metadata keys (dots as '__') set, or removed where None."""
    import onnx

    model = onnx.load(str(src))
    meta = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(dst))
    return dst


def probabilities(doc):
    """Each sample's probabilities by class (needs --top covering every class)."""
    return np.array([[t["probability"] for t in sorted(r["top"], key=lambda t: t["class"])] for r in doc["results"]])


def test_softmax_inside_a_block_is_not_applied_twice(tmp_path, capsys):
    (tmp_path / "spec.yaml").write_text(BLOCK_SOFTMAX_SPEC)
    assert main(["build", str(tmp_path / "spec.yaml"), "--backend", "torch", "--seed", "2", "-o", str(tmp_path / "m"),
                 "--quiet"]) == 0
    capsys.readouterr()
    model = tmp_path / "m" / "model.onnx"
    x = np.random.default_rng(5).random((4, 1, 6, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    raw = reference(model, x)
    doc = run_json(capsys, model, "--input", tmp_path / "x.npy", "--top", "3")
    assert doc["probabilities"] == "model"
    probs = probabilities(doc)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, raw, rtol=1e-6)
    twice = np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)
    assert not np.allclose(probs, twice, atol=1e-3)


def test_metadata_saying_softmax_is_believed(models, tmp_path, capsys):
    x = np.random.default_rng(6).random((3, 1, 6, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    raw = reference(models["probs"], x)
    # the keys win over a spec that (wrongly) ends in a plain dense, and over a missing one
    logits_spec = spec_meta(["flatten", {"dense": 3}])["cnnspec.spec"]
    for name, spec in (("misleading", logits_spec), ("none", None)):
        model = with_metadata(models["probs"], tmp_path / name / "model.onnx", cnnspec__spec=spec,
                              cnnspec__output_op="softmax", cnnspec__output_activation="")
        doc = run_json(capsys, model, "--input", tmp_path / "x.npy", "--top", "3")
        assert doc["probabilities"] == "model"
        np.testing.assert_allclose(probabilities(doc), raw, rtol=1e-6)
    said_logits = with_metadata(models["probs"], tmp_path / "logits" / "model.onnx", cnnspec__output_op="dense",
                                cnnspec__output_activation="")
    assert run_json(capsys, said_logits, "--input", tmp_path / "x.npy")["probabilities"] == "softmax"


def test_hostile_metadata_in_a_model_falls_back_to_the_numbers(models, tmp_path, capsys):
    deep = "[" * 1_000_000
    model = with_metadata(models["logits"], tmp_path / "m" / "model.onnx", cnnspec__spec=deep, cnnspec__classes=deep)
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 4, 4), np.float32))
    doc = run_json(capsys, model, "--input", tmp_path / "x.npy")
    assert doc["probabilities"] == "softmax" and doc["results"][0]["top"][0]["label"] is None


def test_labels_that_repeat_the_index_are_shown_once():
    def result(labels):
        top = [{"class": c, "label": labels[c], "probability": p} for c, p in ((8, 0.9), (6, 0.1))]
        return {"model": "m.onnx", "name": "n", "provider": "cpu", "input_shape": [1, 8, 8], "output_shape": [10],
                "probabilities": "model", "results": [{"input": "d.png", "index": None, "top": top}]}

    digits = runner.format_results(result([str(i) for i in range(10)])).splitlines()
    assert digits[-2:] == ["   1. 8  0.9000", "   2. 6  0.1000"]
    named = runner.format_results(result([f"class-{i}" for i in range(10)])).splitlines()
    assert named[-2:] == ["   1. 8  class-8  0.9000", "   2. 6  class-6  0.1000"]


def test_a_map_output_is_saved_as_arrays_not_ranked(tmp_path, capsys):
    """A segmentation-style net (output [C, H, W]) gets its outputs written as .npy, one per input file."""
    pytest.importorskip("onnxruntime")
    import json as json_

    from cnnspec.cli import main

    spec = tmp_path / "seg.yaml"
    spec.write_text("cnnspec: 1\nname: seg\ninput: [1, 6, 6]\nlayers:\n"
                    "  - conv2d: {filters: 2, kernel: 3, padding: 1}\n  - sigmoid\n", encoding="utf-8")
    assert main(["build", str(spec), "--backend", "onnx", "-o", str(tmp_path / "m"), "--quiet"]) == 0
    x = np.random.default_rng(0).random((3, 1, 6, 6), dtype=np.float32)
    np.save(tmp_path / "batch.npy", x)
    np.save(tmp_path / "one.npy", x[0])
    out = tmp_path / "masks"
    capsys.readouterr()
    assert main(["run", str(tmp_path / "m" / "model.onnx"), "-i", str(tmp_path / "batch.npy"),
                 str(tmp_path / "one.npy"), "--save", str(out), "--json"]) == 0
    result = json_.loads(capsys.readouterr().out)
    assert result["probabilities"] is None and result["output_shape"] == [2, 6, 6]
    batch, one = np.load(out / "batch.npy"), np.load(out / "one.npy")
    assert batch.shape == (3, 2, 6, 6) and one.shape == (2, 6, 6)
    np.testing.assert_allclose(one, batch[0], rtol=1e-6)
    assert ((batch > 0) & (batch < 1)).all()  # the sigmoid's numbers, saved as they came
    assert {r["saved"] for r in result["results"]} == {str(out / "batch.npy"), str(out / "one.npy")}


def test_train_of_a_map_spec_asks_for_images_and_masks(tmp_path, capsys):
    from cnnspec.cli import main

    spec = tmp_path / "seg.yaml"
    spec.write_text("cnnspec: 1\nname: seg\ninput: [1, 8, 8]\nlayers:\n  - conv2d: {filters: 2, kernel: 1}\n",
                    encoding="utf-8")
    assert main(["train", str(spec), "--data", "digits", "-o", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "images/ and masks/" in err[0] and "[2, 8, 8]" in err[0]
    assert not (tmp_path / "o").exists()
