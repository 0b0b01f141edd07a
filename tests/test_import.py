"""`cnnspec import`: every zoo spec through cnnspec's own ONNX and back (params, MACs, layer names and
weights equal, ONNX Runtime's outputs within 1e-5 of their scale up to 30 M weights), blocks folded as the zoo writes them
(ResNet-50's stages of bottleneck calls, MobileNetV2's inverted residuals, U-Net's double
convolutions) with the flat spec's names, and the command's files."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backends"))

import cnnspec  # noqa: E402
from cnnspec.importer.model import import_onnx  # noqa: E402
from cnnspec.onnxfile.writer import model_bytes  # noqa: E402
from cnnspec_onnx.init import initial_weights  # noqa: E402

SPECS = sorted((ROOT / "specs").glob("*.yaml"))
CHEAP_MACS = 1_000_000_000   # above this (or 30 M parameters) the ONNX Runtime comparison is marked slow
TOLERANCE = 1e-5


def zoo_weights(graph, seed=0):
    """Initial weights with batchnorm statistics moved off 0 and 1, so they matter."""
    weights = initial_weights(graph, seed)
    rng = np.random.default_rng(seed)
    for key in weights:
        if key.endswith("running_mean"):
            weights[key] = rng.uniform(-0.3, 0.3, weights[key].shape).astype(np.float32)
        elif key.endswith("running_var"):
            weights[key] = rng.uniform(0.5, 1.5, weights[key].shape).astype(np.float32)
    return weights


def exported(spec_path, tmp_path):
    graph = cnnspec.load(spec_path).graph
    weights = zoo_weights(graph)
    blob = model_bytes(graph, weights)
    path = tmp_path / "model.onnx"
    path.write_bytes(blob)
    return graph, weights, blob, path


def relative_error(a, b) -> float:
    return float(np.abs(a - b).max() / max(float(np.abs(a).max()), 1e-12))


def run(blob, x):
    return ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).run(None, {"input": x})


def _case(path):
    graph = cnnspec.load(path).graph
    slow = graph.macs > CHEAP_MACS or graph.params > 30_000_000
    return pytest.param(path, id=path.stem, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("spec_path", [_case(p) for p in SPECS])
def test_every_zoo_spec_round_trips_through_its_own_onnx(spec_path, tmp_path):
    graph, weights, blob, path = exported(spec_path, tmp_path)
    imported = import_onnx(path)
    back = imported.graph
    assert (back.params, back.macs) == (graph.params, graph.macs)
    kept = [n.name for n in graph.nodes if n.op != "dropout"]   # dropout computes nothing in ONNX
    assert [n.name for n in back.nodes] == kept
    if any(n.via for n in graph.nodes):   # a spec written with blocks comes back with blocks (not flat)
        assert imported.blocks
    assert all(np.array_equal(imported.weights[key], array) for key, array in weights.items())
    if graph.params <= 30_000_000:  # the largest (VGG, AlexNet: 60-140 M weights) rest on equal weights
        x = np.random.default_rng(1).standard_normal((1, *graph.input_shape)).astype(np.float32)
        for a, b in zip(run(blob, x), run(model_bytes(back, imported.weights), x)):
            assert relative_error(a, b) <= TOLERANCE
    # what was written checks again from its text, as `cnnspec check` reads it
    assert cnnspec.loads(imported.text).graph.params == graph.params


def test_folded_and_flat_specs_have_the_same_layers_and_weights(tmp_path):
    _graph, _w, _blob, path = exported(ROOT / "specs" / "resnet18.yaml", tmp_path)
    folded, flat = import_onnx(path), import_onnx(path, flat=True)
    assert folded.blocks and not flat.blocks
    assert "blocks:" in folded.text and "blocks:" not in flat.text
    assert [n.name for n in folded.graph.nodes] == [n.name for n in flat.graph.nodes]
    assert folded.weights.keys() == flat.weights.keys()
    assert len(folded.text.splitlines()) < len(flat.text.splitlines()) / 2


def _top_level(text):
    doc = cnnspec.spec.loader.parse_yaml(text, "<t>").data
    return doc, doc["layers"]


def test_resnet50_reads_as_stages_of_bottleneck_calls(tmp_path):
    _graph, _w, _blob, path = exported(ROOT / "specs" / "resnet50.yaml", tmp_path)
    imported = import_onnx(path)
    doc, layers = _top_level(imported.text)
    assert len(doc["blocks"]) == 1
    (block,) = doc["blocks"]
    calls = [entry for entry in layers if block in entry]
    assert [(c["name"], c["repeat"]) for c in calls] == [("layer1", 3), ("layer2", 4), ("layer3", 6), ("layer4", 3)]
    assert all("expect" in c for c in calls)
    assert [c["first"].get("with_downsample") for c in calls] == [True] * 4      # the projection, first only
    strides = [[v for k, v in c["first"].items() if k.endswith("stride")] for c in calls]
    assert strides == [[], [2], [2], [2]]        # stages 2-4 start with a stride, stage 1 does not
    assert len(layers) == 10   # conv1, bn1, relu, maxpool, four stages, avgpool, fc


def test_mobilenet_v2_folds_its_inverted_residuals(tmp_path):
    _graph, _w, _blob, path = exported(ROOT / "specs" / "mobilenet-v2.yaml", tmp_path)
    doc, layers = _top_level(import_onnx(path).text)
    repeated = [entry for entry in layers if "repeat" in entry]
    assert len(repeated) >= 4 and all(entry["name"] == "features" for entry in repeated)
    block = next(iter(k for k in repeated[0] if k in doc["blocks"]))
    whens = [row.get("when") for row in doc["blocks"][block]["layers"]]
    assert any(w and w.startswith("$with_add") for w in whens)   # the residual add, optional
    assert len(layers) < 20


def test_unet_folds_its_double_convolutions(tmp_path):
    _graph, _w, _blob, path = exported(ROOT / "specs" / "unet.yaml", tmp_path)
    doc, layers = _top_level(import_onnx(path).text)
    assert list(doc["blocks"]) == ["double_conv"]
    calls = [entry["name"] for entry in layers if "double_conv" in entry]
    assert calls == ["inc", "down1.maxpool_conv.1", "down2.maxpool_conv.1", "down3.maxpool_conv.1",
                     "down4.maxpool_conv.1", "up1.conv", "up2.conv", "up3.conv", "up4.conv"]
    assert doc["blocks"]["double_conv"]["params"] == {"filters": 64}


def test_the_command_writes_a_spec_and_weights_that_build_and_check(tmp_path):
    graph, weights, blob, path = exported(ROOT / "specs" / "lenet-5.yaml", tmp_path)
    spec, out = tmp_path / "net.yaml", tmp_path / "net.safetensors"
    done = subprocess.run([sys.executable, "-m", "cnnspec", "import", str(path), "-o", str(spec), "--weights",
                           str(out), "--name", "lenet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(spec)
    checked = subprocess.run([sys.executable, "-m", "cnnspec", "check", str(spec), "--json"],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["specs"][0]["params"] == graph.params if "specs" in json.loads(
        checked.stdout) else True
    from cnnspec.weights.safetensors_io import read_weights

    again = cnnspec.load(spec).graph
    assert again.name == "lenet"
    loaded = read_weights(out, again)
    assert all(np.array_equal(loaded[k], weights[k]) for k in weights)


def test_classes_in_the_metadata_come_back(tmp_path):
    doc = {"cnnspec": 1, "name": "c", "input": [1, 8, 8], "classes": ["cat", "dog", "émeu"],
           "layers": [{"conv2d": {"filters": 4, "kernel": 3}}, "flatten", {"dense": 3}, "softmax"]}
    graph = cnnspec.loads(json.dumps(doc)).graph
    path = tmp_path / "c.onnx"
    path.write_bytes(model_bytes(graph, zoo_weights(graph)))
    text = import_onnx(path).text
    assert cnnspec.loads(text).graph.classes == ("cat", "dog", "émeu")


def test_fused_activations_and_the_tanh_gelu_of_our_own_writer_come_back(tmp_path):
    doc = {"cnnspec": 1, "name": "f", "input": [3, 8, 8], "layers": [
        {"conv2d": {"filters": 4, "kernel": 3, "activation": "silu"}, "name": "a"},
        {"conv2d": {"filters": 4, "kernel": 3, "activation": "gelu"}, "name": "b"},
        {"conv2d": {"filters": 4, "kernel": 1, "activation": "hard_swish"}, "name": "c"},
        {"conv2d": {"filters": 4, "kernel": 1, "activation": "mish"}, "name": "d"},
        {"gelu": {"approximate": "tanh"}, "name": "g"},
        "flatten", {"dense": {"units": 5, "activation": "leaky_relu"}, "name": "e"}]}
    graph = cnnspec.loads(json.dumps(doc)).graph
    path = tmp_path / "f.onnx"
    path.write_bytes(model_bytes(graph, zoo_weights(graph)))
    back = import_onnx(path).graph
    assert [(n.name, n.attrs.get("activation")) for n in back.nodes if n.op not in ("flatten", "gelu")] == [
        ("a", "silu"), ("b", "gelu"), ("c", "hard_swish"), ("d", "mish"), ("e", "leaky_relu")]
    assert back.node("g").op == "gelu" and back.node("g").attrs["approximate"] == "tanh"   # its chain, read back


def test_copies_with_two_inputs_fold_into_a_block_with_inputs(tmp_path):
    """U-Net-like up blocks that read the map below and an encoder's skip: a block with `inputs`."""
    layers = [{"conv2d": {"filters": 4, "kernel": 3, "padding": 1}, "name": "enc1"},
              {"maxpool2d": 2, "name": "down1"},
              {"conv2d": {"filters": 8, "kernel": 3, "padding": 1}, "name": "enc2"},
              {"maxpool2d": 2, "name": "down2"},
              {"conv2d": {"filters": 8, "kernel": 3, "padding": 1}, "name": "mid"}]
    for k, (skip, filters) in enumerate((("enc2", 8), ("enc1", 4)), 1):
        layers += [{"upsample2d": 2, "name": f"up{k}.up"},
                   {"concat": None, "name": f"up{k}.cat", "in": [f"up{k}.up", skip]},
                   {"conv2d": {"filters": filters, "kernel": 3, "padding": 1}, "name": f"up{k}.conv"},
                   {"relu": None, "name": f"up{k}.act"}]
    graph = cnnspec.loads(json.dumps({"cnnspec": 1, "name": "m", "input": [3, 16, 16], "layers": layers})).graph
    path = tmp_path / "m.onnx"
    path.write_bytes(model_bytes(graph, zoo_weights(graph)))
    imported = import_onnx(path)
    doc, top = _top_level(imported.text)
    assert doc["blocks"]["up"]["inputs"] == ["x", "skip"]
    assert [(e["name"], e["in"]) for e in top if "up" in e] == [("up1", ["mid", "enc2"]), ("up2", ["up1.act", "enc1"])]
    assert [n.name for n in imported.graph.nodes] == [n.name for n in graph.nodes]


def test_mobilenet_v3_blocks_take_their_activation_as_a_parameter(tmp_path):
    """relu and hard-swish stages share one block: the activation op is the parameter `$act`."""
    _graph, _w, _blob, path = exported(ROOT / "specs" / "mobilenet-v3-large.yaml", tmp_path)
    doc, layers = _top_level(import_onnx(path).text)
    rows = [row for block in doc["blocks"].values() for row in block["layers"]]
    assert any("$act" in row for row in rows)
    acts = {entry.get(name, {}).get("act") for entry in layers for name in doc["blocks"]
            if isinstance(entry.get(name), dict)}
    assert {"relu", "hard_swish"} & acts
    assert len(layers) < 20


ROUND_TRIP = """cnnspec: 1
name: sep
input: [3, 12, 12]
layers:
  - {separable_conv2d: {filters: 8, kernel: 3, stride: 2, padding: same, depth_multiplier: 2, bias: false,
                        activation: relu}, name: sep1}
  - {separable_conv2d: {filters: 6, kernel: 3}, name: sep2}
  - {reshape: [6, 2, 8], name: as_map}
  - {conv2d: {filters: 4, kernel: 1}, name: conv}
  - {reshape: [-1], name: as_vector}
  - {softmax: null, name: prob}
"""


@pytest.mark.slow
def test_separable_conv_and_reshape_come_back_through_build_and_import(tmp_path):
    """The commands end to end: `cnnspec build --backend onnx`, then `cnnspec import` (blocks on)."""
    import onnxruntime as ort
    from cnnspec.weights.safetensors_io import read_weights

    source = tmp_path / "sep.yaml"
    source.write_text(ROUND_TRIP)
    built = subprocess.run([sys.executable, "-m", "cnnspec", "build", str(source), "--backend", "onnx", "-o",
                            str(tmp_path / "build"), "--quiet"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    spec, out = tmp_path / "back.yaml", tmp_path / "back.safetensors"
    done = subprocess.run([sys.executable, "-m", "cnnspec", "import", str(tmp_path / "build" / "model.onnx"), "-o",
                           str(spec), "--weights", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = cnnspec.load(source).graph, cnnspec.load(spec).graph
    assert [(n.name, n.op) for n in after.nodes] == [(n.name, n.op) for n in before.nodes]
    for new, old in zip(after.nodes, before.nodes):   # 'same' comes back as its pads, a -1 resolved
        assert {k: v for k, v in new.attrs.items() if k not in ("padding", "shape")} == \
            {k: v for k, v in old.attrs.items() if k not in ("padding", "shape")}
        assert (new.pads, new.shape) == (old.pads, old.shape)
        if old.op == "reshape":
            assert list(new.attrs["shape"]) == list(old.shape)
    assert (after.params, after.macs) == (before.params, before.macs)
    original = read_weights(tmp_path / "build" / "weights.safetensors", before)
    weights = read_weights(out, after)
    assert sorted(weights) == sorted(original) and all(np.array_equal(weights[k], original[k]) for k in original)
    x = np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32)
    a = ort.InferenceSession(str(tmp_path / "build" / "model.onnx")).run(None, {"input": x})[0]
    b = ort.InferenceSession(model_bytes(after, weights)).run(None, {"input": x})[0]
    assert float(np.abs(a - b).max()) <= 1e-5 * float(np.abs(a).max())
