"""ONNX files no part of cnnspec wrote: hand-written PyTorch models (residual, depthwise with
squeeze-and-excite and every decomposed activation, two outputs, encoder-decoder with a transposed
convolution, skips, padding and crops, a channels-last layernorm) exported by both torch exporters
(TorchScript and ``dynamo=True``) import, check, and rebuilt by cnnspec's own writer give ONNX
Runtime the source's outputs within 1e-5 of their scale."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
nn, F = torch.nn, torch.nn.functional

import cnnspec  # noqa: E402
from cnnspec.importer.model import import_onnx  # noqa: E402
from cnnspec.onnxfile.writer import model_bytes  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]
TOLERANCE = 1e-5
SHAPE = (1, 3, 16, 16)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.SiLU(),
                                   nn.Conv2d(16, 16, 3, padding=1))
        self.pool, self.drop, self.fc = nn.MaxPool2d(2), nn.Dropout(0.2), nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.pool(F.relu(x + self.block(x)))
        return self.fc(self.drop(torch.flatten(x, 1)))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw, self.bn = nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16)
        self.act, self.gelu, self.mish = nn.Hardswish(), nn.GELU(), nn.Mish()
        self.se1, self.se2, self.head = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1), nn.Linear(16, 5)

    def forward(self, x):
        x = self.mish(self.act(self.bn(self.pw(self.gelu(self.dw(F.relu6(self.conv(x))))))))
        gate = torch.sigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(x, 1)))))
        x = x * gate
        x = F.hardsigmoid(x) + F.leaky_relu(x, 0.1)
        return torch.softmax(self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), dim=1)


class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.cls, self.seg = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4), nn.Conv2d(8, 2, 1)

    def forward(self, x):
        f = torch.tanh(self.body(x))
        return self.cls(torch.flatten(F.adaptive_max_pool2d(f, 1), 1)), self.seg(f)


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc1, self.enc2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.up, self.dec = nn.ConvTranspose2d(16, 8, 2, stride=2), nn.Conv2d(16, 8, 3, padding=1)
        self.near, self.lin = nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2, mode="bilinear")
        self.ln, self.out = nn.LayerNorm(8), nn.Conv2d(8, 1, 1)

    def forward(self, x):
        e1 = F.elu(self.enc1(x))
        e2 = F.relu(self.enc2(F.avg_pool2d(e1, 2)))
        d = F.relu(self.dec(torch.cat([self.up(e2), e1], dim=1)))
        d = self.ln(d.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        d = F.pad(d, (1, 1, 1, 1))[:, :, 1:-1, 1:-1]
        d = F.max_pool2d(d, 2)
        return torch.sigmoid(self.out(self.near(d) + self.lin(d)))


MODELS = {"residual": Residual, "depthwise": Depthwise, "two-outputs": TwoOutputs, "encoder-decoder": EncoderDecoder}


def export(module, dynamo: bool, path):
    torch.manual_seed(0)
    model = module()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    extra = {} if dynamo else {"dynamic_axes": {"x": {0: "batch"}}}
    torch.onnx.export(model, (torch.randn(*SHAPE),), str(path), input_names=["x"], dynamo=dynamo, **extra)


def compare(path):
    imported = import_onnx(path)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    source = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    rebuilt = ort.InferenceSession(model_bytes(imported.graph, imported.weights),
                                   providers=["CPUExecutionProvider"]).run(None, {"input": x})
    assert len(source) == len(rebuilt)
    for a, b in zip(source, rebuilt):
        assert a.shape == b.shape
        assert float(np.abs(a - b).max()) <= TOLERANCE * max(float(np.abs(a).max()), 1e-12)
    return imported


EXPORTERS = [pytest.param(False, id="torchscript"),
             pytest.param(True, id="dynamo", marks=pytest.mark.slow)]


@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_torch_export_imports_and_computes_the_same(name, dynamo, tmp_path):
    if dynamo:
        pytest.importorskip("onnxscript")
    path = tmp_path / f"{name}.onnx"
    export(MODELS[name], dynamo, path)
    imported = compare(path)
    again = cnnspec.loads(imported.text).graph   # the text as `cnnspec check` reads it
    assert again.params == imported.graph.params
    if name == "two-outputs":
        assert len(again.outputs) == 2
    if name == "residual":   # module names become layer names, weights keep torch's keys where it kept them
        assert {"stem.0", "block.0", "block.3", "fc"} <= {n.name for n in again.nodes}


class ChannelsFirstLayerNorm(nn.Module):
    """ConvNeXt's LayerNorm2d written out: the decomposition an exporter keeps as it is."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(channels) + 0.5)
        self.bias = nn.Parameter(torch.rand(channels))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        v = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - u) / torch.sqrt(v + 1e-6)) + self.bias[:, None, None]


class Normalised(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 8, 3), ChannelsFirstLayerNorm(8)
        self.fc, self.ln = nn.Linear(8, 4), nn.LayerNorm(4)

    def forward(self, x):
        x = self.norm(self.conv(x))
        return self.ln(self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


@pytest.mark.parametrize("opset", [14, 17])   # 14: nn.LayerNorm decomposed too; 17: LayerNormalization
def test_layernorm_and_its_decomposition_import_as_layernorm(opset, tmp_path):
    path = tmp_path / "ln.onnx"
    torch.manual_seed(0)
    torch.onnx.export(Normalised().eval(), (torch.randn(*SHAPE),), str(path), input_names=["x"], dynamo=False,
                      opset_version=opset)
    imported = compare(path)
    assert [(n.name, n.op) for n in imported.graph.nodes if n.op == "layernorm"] == [("norm", "layernorm"),
                                                                                     ("ln", "layernorm")]
    assert imported.graph.node("norm").attrs["eps"] == pytest.approx(1e-6)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck, with its module names (conv1..3, bn1..3, relu, downsample)."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.relu, self.downsample = nn.ReLU(inplace=True), downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet-50 layout (stages of 3, 4, 6, 3 bottlenecks), narrowed by ``width``."""

    def __init__(self, width=8, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.inplanes = width
        self.conv1, self.bn1 = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width)
        self.relu, self.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        for k, (n, stride) in enumerate(zip(blocks, (1, 2, 2, 2))):
            setattr(self, f"layer{k + 1}", self._stage(width * 2 ** k, n, stride))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(self.inplanes, 10)

    def _stage(self, planes, n, stride):
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, down)]
        self.inplanes = planes * 4
        return nn.Sequential(*layers, *(Bottleneck(self.inplanes, planes) for _ in range(1, n)))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_torchvision_style_resnet50_reads_as_stages_of_one_bottleneck(dynamo, tmp_path):
    import cnnspec.spec.loader as loader

    path = tmp_path / "resnet.onnx"
    export(ResNet, dynamo, path)
    imported = compare(path)
    doc = loader.parse_yaml(imported.text, "<t>").data
    (block,) = doc["blocks"]
    calls = [(e["name"], e["repeat"], e["first"].get("with_downsample")) for e in doc["layers"] if block in e]
    assert calls == [("layer1", 3, True), ("layer2", 4, True), ("layer3", 6, True), ("layer4", 3, True)]
    names = {n.name for n in imported.graph.nodes}
    assert {"layer1.0.conv1", "layer1.0.downsample.0", "layer4.2.conv3", "fc"} <= names


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class CNBlock(nn.Module):
    """torchvision's ConvNeXt block: its LayerNorm and Linear layers run channels-last between permutes."""

    def __init__(self, dim):
        super().__init__()
        self.layer_scale = nn.Parameter(torch.rand(dim, 1, 1))
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
                                   nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
                                   nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))

    def forward(self, x):
        return x + self.layer_scale * self.block(x)


class ConvNeXtish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.features = nn.Conv2d(3, 16, 4, 4), nn.Sequential(CNBlock(16), CNBlock(16))
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(self.stem(x)), 1), 1))


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_a_channels_last_stretch_reads_channels_first(dynamo, tmp_path):
    """Transpose, per-pixel LayerNorm/Linear/GELU, Transpose back: a layernorm and 1x1 convolutions,
    and the two blocks fold into one called with repeat."""
    import cnnspec.spec.loader as loader

    path = tmp_path / "convnext.onnx"
    export(ConvNeXtish, dynamo, path)
    imported = compare(path)
    doc = loader.parse_yaml(imported.text, "<t>").data
    (block,) = doc["blocks"].values()
    assert [next(iter(row)) for row in block["layers"]] == ["conv2d", "layernorm", "conv2d", "gelu", "conv2d",
                                                             "scale", "add"]
    assert [e.get("repeat") for e in doc["layers"]] == [None, 2, None, None]
    assert "features.1.layer_scale.weight" in imported.weights


@pytest.mark.parametrize("dynamo", EXPORTERS)
def test_cnnspecs_torch_backend_export_keeps_separable_conv_and_reshape(dynamo, tmp_path):
    """A model built by cnnspec's torch backend and exported by PyTorch names its weights
    ``sep.depthwise.weight`` / ``sep.pointwise.weight``: one separable_conv2d; its view is a reshape
    (the dynamo exporter writes it with ``allowzero = 1``)."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backends"))
    from cnnspec_torch.model import build_module

    graph = cnnspec.loads(json.dumps({"cnnspec": 1, "name": "t", "input": list(SHAPE[1:]), "layers": [
        {"separable_conv2d": {"filters": 6, "kernel": 3, "depth_multiplier": 2, "padding": "same"}, "name": "sep"},
        {"reshape": [-1, SHAPE[2] * 2, SHAPE[3] // 2], "name": "fold"}, {"conv2d": {"filters": 2, "kernel": 1},
                                                                        "name": "conv"}]})).graph
    path = tmp_path / "t.onnx"
    torch.onnx.export(build_module(graph).eval(), (torch.randn(*SHAPE),), str(path), input_names=["x"],
                      dynamo=dynamo)
    imported = compare(path)
    assert [(n.name, n.op) for n in imported.graph.nodes] == [("sep", "separable_conv2d"), ("fold", "reshape"),
                                                              ("conv", "conv2d")]
    assert sorted(imported.weights) == ["conv.bias", "conv.weight", "sep.depthwise.weight", "sep.pointwise.bias",
                                        "sep.pointwise.weight"]
