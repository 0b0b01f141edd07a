"""``cnnspec quantize``: the digits model keeps its accuracy in int8; the report's figures come from the
models; a model that loses accuracy is refused with nothing written; calibration reads training images
only; the output passes onnx.checker, keeps its metadata and runs in ``cnnspec run``; a file that is
not a cnnspec model is refused with one line."""
import json

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")
pytest.importorskip("sklearn")

from cnnspec.cli import main  # noqa: E402
from cnnspec.data.sources import load_digits_dataset  # noqa: E402
from cnnspec.errors import InputError, QuantizationRefused, UsageError  # noqa: E402
from cnnspec.quantize import calibration, quantize_model  # noqa: E402
from cnnspec.quantize.fold import fold_batchnorms  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
FAST = ["--samples", "128", "--speed-seconds", "0"]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """specs/digits.yaml trained 3 epochs (as `make demo` trains it, shorter)."""
    from pathlib import Path

    out = tmp_path_factory.mktemp("digits")
    spec = Path(__file__).resolve().parent.parent / "specs" / "digits.yaml"
    assert main(["train", str(spec), "--data", "digits", "--epochs", "3", "-o", str(out), "--quiet"]) == 0
    return out / "model.onnx"


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset((1, 8, 8))


def quantize_json(capsys, *argv):
    code = main(["quantize", *map(str, argv), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def scores(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_digits_int8_keeps_accuracy_and_the_figures_come_from_the_models(digits_model, digits, tmp_path, capsys):
    out = tmp_path / "int8.onnx"
    report = quantize_json(capsys, digits_model, "--calibrate", "digits", "-o", out, *FAST)
    held = report["held_out"]
    assert held["drop_points"] <= 0.5 and held["agreement"] >= 0.99
    # recomputed here, from the two files and the held-out split train uses
    a, b = scores(digits_model, digits.x_test), scores(out, digits.x_test)
    assert held["images"] == len(digits.y_test)
    assert held["fp32_accuracy"] == pytest.approx(np.mean(a.argmax(1) == digits.y_test))
    assert held["int8_accuracy"] == pytest.approx(np.mean(b.argmax(1) == digits.y_test))
    assert held["agreement"] == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    assert held["max_output_difference"] == pytest.approx(np.abs(a.astype(np.float64) - b).max(), rel=1e-5)
    assert report["calibration_images"] == 128 and report["training_images"] == len(digits.y_train)


def test_output_is_checked_keeps_metadata_and_runs(digits_model, digits, tmp_path, capsys):
    out = tmp_path / "int8.onnx"
    quantize_json(capsys, digits_model, "--calibrate", "digits", "-o", out, *FAST)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    fp32_meta = {p.key: p.value for p in onnx.load(str(digits_model)).metadata_props}
    assert all(meta[k] == v for k, v in fp32_meta.items())  # spec, classes, shapes kept
    record = json.loads(meta["cnnspec.quantization"])
    assert record["method"] == "static" and record["format"] == "QDQ" and record["per_channel"]
    assert record["activations"] == "uint8" and record["calibration"] == {
        "source": "digits", "images": 128, "method": "MinMax", "part": "training"}
    ops = {n.op_type for n in model.graph.node}
    assert "BatchNormalization" not in ops and "QuantizeLinear" in ops
    assert model.graph.node[-1].op_type == "Gemm"  # float scores: no Q/DQ pair before the output
    np.save(tmp_path / "x.npy", digits.x_test[:5])
    code = main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--json", "--top", "1"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and len(result["results"]) == 5
    assert result["results"][0]["top"][0]["label"] in [str(c) for c in range(10)]  # labels from the metadata
    assert sum(r["top"][0]["class"] == c for r, c in zip(result["results"], digits.y_test[:5])) >= 4


def test_speed_figures_are_measured_in_one_run(digits_model, tmp_path, capsys):
    report = quantize_json(capsys, digits_model, "--calibrate", "digits", "-o", tmp_path / "q.onnx",
                           "--samples", "32", "--speed-seconds", "0.2")
    assert set(report["speed"]) == {"1", "32"}
    for figures in report["speed"].values():
        assert figures["ratio"] > 0 and figures["int8_images_per_second"] > 0


def misleading_npz(digits, path, scale):
    """Training images dimmed to ``scale``: calibration sees tiny ranges, the held-out images saturate."""
    np.savez(path, x_train=digits.x_train * scale, y_train=digits.y_train, x_test=digits.x_test,
             y_test=digits.y_test)
    return path


def test_a_model_that_loses_accuracy_is_refused_and_nothing_is_written(digits_model, digits, tmp_path, capsys):
    source = misleading_npz(digits, tmp_path / "dim.npz", 0.05)
    out = tmp_path / "int8.onnx"
    code = main(["quantize", str(digits_model), "--calibrate", str(source), "-o", str(out), *FAST])
    captured = capsys.readouterr()
    assert code == 1 and not out.exists() and captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "more than --max-drop 1" in lines[0] and "nothing written" in lines[0]
    assert list(tmp_path.iterdir()) == [source]  # no temporary file left either
    # --force writes it, and the report says how much it lost
    report = quantize_json(capsys, digits_model, "--calibrate", source, "-o", out, "--force", *FAST)
    assert out.exists() and report["forced"] and report["held_out"]["drop_points"] > 1.0


def test_refusal_through_the_function_train_calls(digits_model, digits, tmp_path):
    out = tmp_path / "int8.onnx"
    with pytest.raises(QuantizationRefused):
        quantize_model(digits_model, digits.x_train * 0.05, digits.x_test, digits.y_test, output=out,
                       samples=64, speed_seconds=0)
    assert not out.exists()
    report = quantize_model(digits_model, digits.x_train, digits.x_test, digits.y_test, output=out,
                            samples=64, speed_seconds=0)
    assert out.exists() and report.held_out.drop_points <= 1.0
    json.dumps(report.to_json())  # ready for metrics.json


def test_calibration_reads_training_images_only(digits_model, digits, tmp_path, monkeypatch, capsys):
    seen = []
    real = calibration.make_reader

    def spy(images, input_name, batch=calibration.CALIBRATION_BATCH):
        reader = real(images, input_name, batch)
        get_next = reader.get_next

        def recording():
            feed = get_next()
            if feed is not None:
                seen.extend(bytes(x.tobytes()) for x in feed[input_name])
            return feed

        reader.get_next = recording
        return reader

    monkeypatch.setattr(calibration, "make_reader", spy)
    quantize_json(capsys, digits_model, "--calibrate", "digits", "-o", tmp_path / "q.onnx", *FAST)
    train = {x.tobytes() for x in digits.x_train}
    held_out_only = {x.tobytes() for x in digits.x_test} - train
    assert len(seen) == 128 and all(x in train for x in seen) and not held_out_only & set(seen)


def write_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(images):
        Image.fromarray((x[0] * 255).round().astype(np.uint8)).save(folder / f"{i}.png")


def test_unlabelled_photos_calibrate_and_accuracy_is_skipped_with_a_line(digits_model, digits, tmp_path, capsys):
    write_pngs(tmp_path / "photos", digits.x_train[:40])
    report = quantize_json(capsys, digits_model, "--calibrate", tmp_path / "photos", "-o", tmp_path / "q.onnx",
                           *FAST)
    assert report["held_out"]["fp32_accuracy"] is None and "no labels" in report["label_note"]
    assert report["calibration_images"] == 32 and report["held_out"]["images"] == 8  # train's 20% split
    assert "disagree" in report["guard"]
    code = main(["quantize", str(digits_model), "--calibrate", str(tmp_path / "photos"), "-o",
                 str(tmp_path / "q2.onnx"), *FAST])
    assert code == 0 and "accuracy       not measured: the folder's images have no labels" in capsys.readouterr().out


def test_class_folders_that_do_not_fit_the_model_calibrate_without_accuracy(digits_model, digits, tmp_path, capsys):
    write_pngs(tmp_path / "data" / "cats", digits.x_train[:10])
    write_pngs(tmp_path / "data" / "dogs", digits.x_train[10:20])
    report = quantize_json(capsys, digits_model, "--calibrate", tmp_path / "data", "-o", tmp_path / "q.onnx", *FAST)
    assert report["held_out"]["int8_accuracy"] is None
    assert report["label_note"] == "class folder 'cats' is not one of the model's classes"


def test_class_folders_named_after_the_classes_give_accuracy(digits_model, digits, tmp_path, capsys):
    for label in range(10):
        write_pngs(tmp_path / "data" / str(label), digits.x_train[digits.y_train == label][:6])
    report = quantize_json(capsys, digits_model, "--calibrate", tmp_path / "data", "-o", tmp_path / "q.onnx", *FAST)
    assert report["held_out"]["fp32_accuracy"] is not None and report["label_note"] == ""


def one_line_error(capsys, argv, code=2):
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], captured.err  # a bug exits 1 too
    return lines[0]


def test_a_model_cnnspec_did_not_write_is_refused(tmp_path, capsys):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["output"])], "foreign",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 2, 6, 6])], [w])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    line = one_line_error(capsys, ["quantize", str(path), "--calibrate", "digits"])
    assert "not a cnnspec model" in line and "preprocessing" in line
    assert not (tmp_path / "foreign.int8.onnx").exists()


def _unknown_op(model):
    model.graph.node[0].op_type = "Foo"


def _weights_that_do_not_fit(model):
    next(t for t in model.graph.initializer if len(t.dims) == 4).dims[0] += 1


def _missing_output(model):
    model.graph.output[0].name = "nowhere"


def _dense_weights_too_wide(model):
    """The dense layer's weights one input too wide (ONNX Runtime's shape inference refuses it)."""
    from onnx import numpy_helper

    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    weight = next(t for t in model.graph.initializer if t.name == gemm.input[1])
    w = numpy_helper.to_array(weight)
    weight.CopyFrom(numpy_helper.from_array(np.concatenate([w, w[:, :1]], axis=1), weight.name))
    del model.graph.value_info[:]


@pytest.mark.parametrize("forge", [_unknown_op, _weights_that_do_not_fit, _missing_output, _dense_weights_too_wide])
def test_a_forged_cnnspec_model_is_one_line_before_the_quantiser_runs(digits_model, tmp_path, capsys, forge):
    """cnnspec's metadata on a graph that does not load or does not run: refused in one line (exit
    2), not an internal error from inside onnxruntime.quantization."""
    model = onnx.load(str(digits_model))
    forge(model)
    path = tmp_path / "forged.onnx"
    onnx.save(model, str(path))
    code = main(["quantize", str(path), "--calibrate", "digits", *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "ONNX Runtime cannot" in err[0] and "internal error" not in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forged.onnx"]


def test_a_model_that_loads_but_does_not_run_is_refused_before_quantising(digits_model, tmp_path, monkeypatch):
    """ONNX Runtime loads some broken graphs and fails only when they run: the first run, on one
    calibration image, comes before the quantiser, and its failure is one line."""
    import onnxruntime

    class FailsWhenRun:
        def __init__(self, session):
            self.session = session

        def get_inputs(self):
            return self.session.get_inputs()

        def run(self, *args):
            raise onnxruntime.capi.onnxruntime_pybind11_state.RuntimeException("Reshape: cannot reshape\nmore")

    from cnnspec.runner import session as session_module

    opened = session_module.open_session
    monkeypatch.setattr(session_module, "open_session", lambda *a: (lambda m, s: (m, FailsWhenRun(s)))(*opened(*a)))
    called = []
    monkeypatch.setattr("cnnspec.quantize.quantizer.quantize_static_model", lambda *a: called.append(a))
    with pytest.raises(InputError, match="ONNX Runtime cannot run this model .*Reshape: cannot reshape"):
        quantize_model(digits_model, np.zeros((4, 1, 8, 8), np.float32), np.zeros((2, 1, 8, 8), np.float32),
                       output=tmp_path / "q.onnx", speed_seconds=0)
    assert not called and not (tmp_path / "q.onnx").exists()


def test_one_line_usage_errors(digits_model, tmp_path, capsys):
    assert "ConvInteger" in one_line_error(capsys, ["quantize", str(digits_model), "--dynamic"])
    assert "--calibrate SOURCE is required" in one_line_error(capsys, ["quantize", str(digits_model)])
    assert "no such data source" in one_line_error(capsys, ["quantize", str(digits_model), "--calibrate",
                                                            str(tmp_path / "missing")])
    assert "is the model being quantised" in one_line_error(
        capsys, ["quantize", str(digits_model), "--calibrate", "digits", "-o", str(digits_model)])
    assert "--samples must be 1" in one_line_error(
        capsys, ["quantize", str(digits_model), "--calibrate", "digits", "--samples", "0"])


def test_an_already_quantised_model_is_refused(digits_model, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    quantize_json(capsys, digits_model, "--calibrate", "digits", "-o", out, *FAST)
    assert "already quantised" in one_line_error(capsys, ["quantize", str(out), "--calibrate", "digits"])


def test_images_that_do_not_fit_the_model_are_one_line(digits_model, tmp_path, capsys):
    np.savez(tmp_path / "big.npz", x_train=np.zeros((4, 28, 28), np.uint8), y_train=np.zeros(4),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2))
    line = one_line_error(capsys, ["quantize", str(digits_model), "--calibrate", str(tmp_path / "big.npz")])
    assert "28x28" in line and "8x8" in line


def test_fold_keeps_the_outputs(digits_model, digits):
    model = onnx.load(str(digits_model))
    folded, count = fold_batchnorms(model)
    assert count == 2 and "BatchNormalization" not in {n.op_type for n in folded.graph.node}
    onnx.checker.check_model(folded, full_check=True)
    x = digits.x_test[:64]
    a = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    b = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(b, a, atol=1e-4 * np.abs(a).max())
    assert {n.name for n in folded.graph.node} <= {n.name for n in model.graph.node}  # cnnspec's names kept


def test_unknown_source_kind_is_refused(digits_model, tmp_path):
    from cnnspec.quantize.model import read_face

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="MNIST-layout .npz"):
        calibration.load_images(str(tmp_path / "notes.txt"), read_face(str(digits_model)))


@pytest.mark.slow
def test_keras_mnist_spec_on_mnist_format_digits_keeps_accuracy(tmp_path, capsys):
    """The Keras-MNIST spec (ends in softmax) trained on an MNIST-layout .npz made from the digits
    (28x28, train's split): at most 0.5 points lost, at least 99% agreement, softmax left in float."""
    from pathlib import Path

    from PIL import Image
    from sklearn.datasets import load_digits

    from cnnspec.data.sources import stratified_split

    bunch = load_digits()
    x = np.stack([np.asarray(Image.fromarray((im * 255 / 16).astype(np.uint8)).resize((28, 28),
                                                                                    Image.Resampling.BILINEAR))
                  for im in bunch.images])
    train, test = stratified_split(bunch.target)
    np.savez(tmp_path / "mnist.npz", x_train=x[train], y_train=bunch.target[train], x_test=x[test],
             y_test=bunch.target[test])
    spec = Path(__file__).resolve().parent.parent / "specs" / "keras-mnist-cnn.yaml"
    assert main(["train", str(spec), "--data", str(tmp_path / "mnist.npz"), "--epochs", "1", "-o",
                 str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "int8.onnx"
    report = quantize_json(capsys, tmp_path / "run" / "model.onnx", "--calibrate", tmp_path / "mnist.npz", "-o", out,
                           "--samples", "64", "--speed-seconds", "0")
    assert report["held_out"]["fp32_accuracy"] > 0.8  # a model worth quantising
    assert report["held_out"]["drop_points"] <= 0.5 and report["held_out"]["agreement"] >= 0.99
    nodes = onnx.load(str(out)).graph.node
    assert [n.op_type for n in nodes[-2:]] == ["Gemm", "Softmax"]  # float scores into a float softmax


def test_every_layer_is_compared_and_the_refusal_names_the_weakest(digits_model, digits, tmp_path, capsys):
    report = quantize_json(capsys, digits_model, "--calibrate", "digits", "-o", tmp_path / "q.onnx", *FAST)
    layers = report["layers"]
    fp32_names = [n.output[0] for n in onnx.load(str(digits_model)).graph.node]
    assert {e["name"] for e in layers} >= {"output"} and all(e["name"] in fp32_names for e in layers)
    assert [e["sqnr_db"] for e in layers] == sorted(e["sqnr_db"] for e in layers)  # worst first
    assert all(15 < e["sqnr_db"] < 80 for e in layers)  # a trained model in 8 bits: clean, not exact
    source = misleading_npz(digits, tmp_path / "dim.npz", 0.05)
    line = one_line_error(capsys, ["quantize", str(digits_model), "--calibrate", str(source), *FAST], code=1)
    assert "weakest layers: " in line and " dB" in line


def test_layer_sqnr_is_infinite_where_equal_and_finite_only_where_changed(digits_model, digits):
    from onnx import numpy_helper

    from cnnspec.quantize.layers import layer_errors

    fp32 = onnx.load(str(digits_model))
    same = {e.name: e.sqnr_db for e in layer_errors(fp32, fp32, digits.x_test)}
    assert same and all(v == float("inf") for v in same.values())
    noisy = onnx.load(str(digits_model))
    last = noisy.graph.node[-1]  # the output Gemm: only its value may change
    weight = next(t for t in noisy.graph.initializer if t.name == last.input[1])
    w = numpy_helper.to_array(weight)
    weight.CopyFrom(numpy_helper.from_array(w + np.float32(0.01) * np.sign(w), weight.name))
    changed = {e.name: e.sqnr_db for e in layer_errors(fp32, noisy, digits.x_test)}
    assert np.isfinite(changed.pop(last.output[0])) and all(v == float("inf") for v in changed.values())


def test_calibration_and_measuring_batches_keep_memory_bounded(tmp_path, monkeypatch):
    """onnxruntime's calibrator keeps every intermediate value of a batch alive: the batch is chosen
    so that stays within STEP_MEMORY (ResNet-50 at the default 32 took 8 GB), and a model whose one
    image cannot fit is refused in one line before calibrating."""
    from pathlib import Path

    from cnnspec.graph import resources
    from cnnspec.quantize import pipeline
    from cnnspec.quantize.model import read_face
    from cnnspec.runner.footprint import every_value_elements, peak_elements

    root = Path(__file__).resolve().parent.parent
    assert main(["build", str(root / "specs" / "resnet18.yaml"), "--backend", "onnx", "-o", str(tmp_path), "--quiet"]) == 0
    face = read_face(str(tmp_path / "model.onnx"))
    every, peak = 4 * every_value_elements(face.proto), 4 * peak_elements(face.proto)
    assert every == 33_525_664  # ResNet-18 at 224: 32 MB an image, so 1 GiB holds 32 (ResNet-50: 144 MB, 7)
    monkeypatch.setattr(pipeline, "STEP_MEMORY", 10 * every + 1)
    calibrate, measure = pipeline._batches(face)
    assert calibrate == 10 and every * calibrate <= pipeline.STEP_MEMORY < every * (calibrate + 1)
    assert 2 * peak * measure <= pipeline.STEP_MEMORY and measure <= 256
    monkeypatch.setattr(resources, "physical_memory", lambda: every)  # half of it: not one image
    with pytest.raises(UsageError, match="calibrating it keeps every intermediate value of an image alive"):
        pipeline._batches(face)


def test_a_forged_int8_model_that_loses_accuracy_is_refused_with_its_own_figures(digits_model, digits, tmp_path,
                                                                                 monkeypatch, capsys):
    """The quantiser is replaced by one that returns a forgery: the real int8 model with its last
    layer's weights reversed. The guard must judge the forgery, by running it, not trust anything
    the quantiser says."""
    from onnx import numpy_helper

    from cnnspec.quantize import quantizer

    real = quantizer.quantize_static_model
    forged = {}

    def forge(model, reader, recipe, where="the model"):
        int8, folded = real(model, reader, recipe, where)
        last = next(n for n in reversed(int8.graph.node) if n.op_type == "Gemm")
        dequantize = next(n for n in int8.graph.node if last.input[1] in n.output)  # int8 weights -> float
        weight = next(t for t in int8.graph.initializer if t.name == dequantize.input[0])
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[::-1].copy(), weight.name))
        forged["model"] = int8
        return int8, folded

    monkeypatch.setattr(quantizer, "quantize_static_model", forge)
    out = tmp_path / "int8.onnx"
    line = one_line_error(capsys, ["quantize", str(digits_model), "--calibrate", "digits", "-o", str(out), *FAST],
                          code=1)
    expected = np.mean(ort.InferenceSession(forged["model"].SerializeToString(), providers=["CPUExecutionProvider"])
                       .run(None, {"input": digits.x_test})[0].argmax(1) == digits.y_test)
    assert "internal error" not in line and expected < 0.5
    assert f"int8 accuracy {100 * expected:.2f}%" in line and "more than --max-drop 1" in line and not out.exists()


def test_a_map_output_is_judged_by_per_pixel_agreement(tmp_path, capsys):
    """A segmentation-style model (class scores per pixel) has no image labels here: the guard uses
    the share of pixels whose class int8 changes, and says so."""
    spec = tmp_path / "seg.yaml"
    spec.write_text("cnnspec: 1\nname: seg\ninput: [1, 8, 8]\nlayers:\n"
                    "  - conv2d: {filters: 8, kernel: 3, padding: same, activation: relu}\n"
                    "  - conv2d: {filters: 3, kernel: 1}\n")
    assert main(["build", str(spec), "--backend", "onnx", "-o", str(tmp_path / "m"), "--quiet"]) == 0
    capsys.readouterr()
    report = quantize_json(capsys, tmp_path / "m" / "model.onnx", "--calibrate", "digits", *FAST)
    held = report["held_out"]
    assert held["per_pixel"] and held["fp32_accuracy"] is None and "not one score per class" in report["label_note"]
    assert "disagree on" in report["guard"] and "of the pixels of 359 held-out images" in report["guard"]
    assert main(["quantize", str(tmp_path / "m" / "model.onnx"), "--calibrate", "digits", *FAST, "-o",
                 str(tmp_path / "q2.onnx")]) == 0
    assert "per-pixel class" in capsys.readouterr().out
