"""The zoo's nets with several outputs: YOLOv3-tiny's two heads (Darknet's cfg) and GoogLeNet's
auxiliary classifiers (torchvision's aux_logits=True): shapes, counts, weight names, and the
auxiliary heads' adaptive pool computed exactly by the three ops that stand for it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import cnnspec
from cnnspec.weights.neutral import expected_weights

SPECS = Path(__file__).resolve().parent.parent / "specs"


def graph(name, **sets):
    return cnnspec.load(SPECS / f"{name}.yaml", sets=sets or None).graph


def test_yolov3_tiny_has_darknets_two_heads():
    g = graph("yolov3-tiny")
    assert [(n.name, n.shape) for n in g.output_nodes] == [("layer15", (255, 13, 13)), ("layer22", (255, 26, 26))]
    assert g.params == 8_852_366
    # the cfg's [route] layers = -1, 8: the upsampled 128 channels, then layer 8's 256, at 26x26
    concat = g.node("layer20")
    assert concat.inputs == ("layer19", "layer8.leaky") and concat.shape == (384, 26, 26)
    assert g.node("layer11").shape == (512, 13, 13)  # the stride-1 max pool keeps the size
    assert [n.attrs["slope"] for n in g.nodes if n.op == "leaky_relu"] == [0.1] * 11
    # Darknet's params: conv weights, batchnorm scale and shift, and only the heads' biases
    biases = sorted(k for k in expected_weights(g) if k.endswith(".bias") and ".bn." not in k)
    assert biases == ["layer15.bias", "layer22.bias"]


def _aux_keys(name, c_in, classes=1000) -> dict:
    """torchvision's InceptionAux state_dict shapes, minus num_batches_tracked."""
    keys = {f"{name}.conv.conv.weight": (128, c_in, 1, 1)}
    keys.update({f"{name}.conv.bn.{p}": (128,) for p in ("weight", "bias", "running_mean", "running_var")})
    keys.update({f"{name}.fc1.weight": (1024, 2048), f"{name}.fc1.bias": (1024,),
                 f"{name}.fc2.weight": (classes, 1024), f"{name}.fc2.bias": (classes,)})
    return keys


def test_googlenet_aux_logits_adds_torchvisions_aux_heads():
    plain, aux = expected_weights(graph("googlenet")), expected_weights(graph("googlenet", aux_logits=True))
    assert aux == {**plain, **_aux_keys("aux1", 512), **_aux_keys("aux2", 528)}
    assert graph("googlenet").outputs == ("fc",) and graph("googlenet").params == 6_624_904
    g = graph("googlenet", aux_logits=True)
    assert g.params == 13_004_888
    assert g.outputs == ("fc", "aux2.fc2", "aux1.fc2")  # GoogLeNetOutputs(logits, aux_logits2, aux_logits1)
    assert g.node("aux1.conv.conv").inputs == ("aux1.pool.pick",)
    assert g.node("aux1.pool.windows").inputs == ("inception4a.concat_1",)
    assert g.node("aux2.pool.windows").inputs == ("inception4d.concat_1",)
    assert g.node("aux1.dropout").attrs["rate"] == 0.7


@pytest.mark.torch
def test_the_aux_pool_is_adaptive_average_pooling_to_4x4():
    torch = pytest.importorskip("torch")
    import json

    doc = {"cnnspec": 1, "name": "pool", "input": [3, 14, 14], "layers": [
        {"avgpool2d": {"kernel": 4, "stride": 1}}, {"upsample2d": 2}, {"avgpool2d": {"kernel": 1, "stride": 7}}]}
    g = cnnspec.loads(json.dumps(doc)).graph
    assert g.output_shape == (3, 4, 4)
    x = np.random.default_rng(0).standard_normal((2, 3, 14, 14)).astype(np.float32)
    model = cnnspec.Spec(g, "<t>").to("torch")
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
        expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), (4, 4)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.torch
def test_googlenet_aux_heads_are_torchvisions():
    """With torchvision: its aux_logits=True model's heads, run in eval mode on the features they read,
    give what the spec's three outputs give (skipped where torchvision is not installed)."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.googlenet(weights=None, aux_logits=True, transform_input=False,
                                             init_weights=True).eval()
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    spec = cnnspec.load(SPECS / "googlenet.yaml", sets={"aux_logits": True})
    ours = spec.to("torch", weights=state).eval()
    seen = {}
    hooks = [getattr(reference, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
             for name in ("inception4a", "inception4d")]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        fc = reference(x)
        expected = (fc, reference.aux2(seen["inception4d"]), reference.aux1(seen["inception4a"]))
        got = ours(x)
    for name, a, b in zip(spec.graph.outputs, got, expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=name)
    for hook in hooks:
        hook.remove()


@pytest.mark.torch
def test_inception_aux_is_torchvisions_inception_aux_forward():
    """The library's inception_aux against torchvision's InceptionAux.forward written out in torch
    (adaptive_avg_pool2d to 4x4, BasicConv2d, flatten, relu(fc1), dropout, fc2), on its own
    state_dict keys (conv.conv, conv.bn, fc1, fc2), in eval mode."""
    torch = pytest.importorskip("torch")
    import json

    F = torch.nn.functional
    doc = {"cnnspec": 1, "name": "aux", "input": [16, 14, 14], "import": "cnnspec:googlenet",
           "layers": [{"inception_aux": {"classes": 7}, "name": "aux1"}]}
    g = cnnspec.loads(json.dumps(doc)).graph
    rng = np.random.default_rng(0)
    weights = {k: rng.uniform(0.5, 1.5, s).astype(np.float32) if k.endswith("running_var")
               else rng.normal(0, 0.2, s).astype(np.float32) for k, s in expected_weights(g).items()}
    assert expected_weights(g) == _aux_keys("aux1", 16, classes=7)
    model = cnnspec.Spec(g, "<t>").to("torch", weights=weights).eval()
    w = {k[len("aux1."):]: torch.from_numpy(v) for k, v in weights.items()}
    x = torch.from_numpy(rng.standard_normal((2, 16, 14, 14)).astype(np.float32))
    with torch.no_grad():
        y = F.adaptive_avg_pool2d(x, (4, 4))
        y = F.conv2d(y, w["conv.conv.weight"])
        y = F.batch_norm(y, w["conv.bn.running_mean"], w["conv.bn.running_var"], w["conv.bn.weight"],
                         w["conv.bn.bias"], False, 0.0, 0.001)
        y = torch.flatten(F.relu(y), 1)
        y = F.relu(F.linear(y, w["fc1.weight"], w["fc1.bias"]))
        expected = F.linear(y, w["fc2.weight"], w["fc2.bias"])
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
