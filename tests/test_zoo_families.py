"""The zoo's families: one file per family, a net per scale (the contract's third edition). Every scale's
parameter count is the published figure, and its weights are torchvision's state_dict, key for key and
shape for shape (generated here from torchvision's constructors, independently of the YAML)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from test_zoo import (torchvision_efficientnet_keys, torchvision_mobilenet_v2_keys,
                      torchvision_resnet_keys)

import cnnspec
from cnnspec.weights.neutral import expected_weights

SPECS = Path(__file__).resolve().parent.parent / "specs"

# torchvision's EfficientNet_B*_Weights meta["num_params"]
EFFICIENTNET = {"b0": 5_288_548, "b1": 7_794_184, "b2": 9_109_994, "b3": 12_233_232, "b4": 19_341_616,
                "b5": 30_389_784, "b6": 43_040_704, "b7": 66_347_960}
# torchvision's efficientnet_b*(): width_mult, depth_mult, dropout; its weights' crop_size; B5-B7's batchnorm
EFFICIENTNET_CONF = {"b0": (1.0, 1.0, 0.2, 224), "b1": (1.0, 1.1, 0.2, 240), "b2": (1.1, 1.2, 0.3, 288),
                     "b3": (1.2, 1.4, 0.3, 300), "b4": (1.4, 1.8, 0.4, 380), "b5": (1.6, 2.2, 0.4, 456),
                     "b6": (1.8, 2.6, 0.5, 528), "b7": (2.0, 3.1, 0.5, 600)}
# torchvision's EfficientNet_B*_Weights meta["_ops"]: GFLOPS (multiply-accumulates) at the crop size, which
# pins each scale's resolution
EFFICIENTNET_GMACS = {"b0": 0.386, "b1": 0.687, "b2": 1.088, "b3": 1.827, "b4": 4.394, "b5": 10.266,
                      "b6": 19.068, "b7": 37.746}
# torchvision's ResNet*_Weights meta["num_params"] and ["_ops"] at 224, and ResNet(block, layers)
RESNET = {"18": 11_689_512, "34": 21_797_672, "50": 25_557_032, "101": 44_549_160, "152": 60_192_808}
RESNET_GMACS = {"18": 1.814, "34": 3.664, "50": 4.089, "101": 7.801, "152": 11.514}
RESNET_CONF = {"18": ("basic", [2, 2, 2, 2]), "34": ("basic", [3, 4, 6, 3]), "50": ("bottleneck", [3, 4, 6, 3]),
               "101": ("bottleneck", [3, 4, 23, 3]), "152": ("bottleneck", [3, 8, 36, 3])}
# torchvision publishes MobileNetV2's count at width 1.0 only (3,504,872); the others are those of
# torchvision.models.MobileNetV2(width_mult=W), computed from its constructor (torchvision_mobilenet_v2_keys
# below, which gives the published 3,504,872 at width 1.0)
MOBILENET_V2 = {"0.5": 1_968_680, "0.75": 2_636_424, "1.0": 3_504_872, "1.4": 6_108_776}


def _params(keys: dict) -> int:
    return sum(math.prod(s) for k, s in keys.items() if not k.endswith(("running_mean", "running_var")))


def _same_weights(graph, theirs: dict):
    ours = expected_weights(graph)
    assert sorted(set(theirs) - set(ours)) == [], "keys torchvision has and the spec lacks"
    assert sorted(set(ours) - set(theirs)) == [], "keys the spec has and torchvision lacks"
    assert ours == theirs and list(ours) == list(theirs)


@pytest.mark.parametrize("scale", sorted(EFFICIENTNET))
def test_efficientnet_scales(scale):
    width, depth, dropout, resolution = EFFICIENTNET_CONF[scale]
    g = cnnspec.load(SPECS / "efficientnet.yaml", scale=scale).graph
    assert g.params == EFFICIENTNET[scale]
    assert round(g.macs / 1e9, 3) == EFFICIENTNET_GMACS[scale]
    theirs = torchvision_efficientnet_keys(width, depth)
    assert _params(theirs) == EFFICIENTNET[scale]  # the generator is torchvision's too
    _same_weights(g, theirs)
    assert g.input_shape == (3, resolution, resolution) and g.output_shape == (1000,)
    assert g.node("classifier.0").attrs["rate"] == dropout
    eps, momentum = (0.001, 0.01) if scale in ("b5", "b6", "b7") else (1e-5, 0.1)
    norms = [n for n in g.nodes if n.op == "batchnorm"]
    assert {(n.attrs["eps"], n.attrs["momentum"]) for n in norms} == {(eps, momentum)}
    assert g.scale == scale


@pytest.mark.parametrize("scale", sorted(RESNET, key=int))
def test_resnet_scales(scale):
    g = cnnspec.load(SPECS / "resnet.yaml", scale=scale).graph
    assert g.params == RESNET[scale]
    assert round(g.macs / 1e9, 3) == RESNET_GMACS[scale]
    _same_weights(g, torchvision_resnet_keys(*RESNET_CONF[scale]))


@pytest.mark.parametrize("scale", sorted(MOBILENET_V2, key=float))
def test_mobilenet_v2_widths(scale):
    g = cnnspec.load(SPECS / "mobilenet-v2.yaml", scale=scale).graph
    theirs = torchvision_mobilenet_v2_keys(float(scale))
    assert _params(theirs) == MOBILENET_V2[scale] == g.params
    _same_weights(g, theirs)


def test_mobilenet_v2_at_width_1_4_starts_with_48_channels_not_44():
    """pytorch/vision#973: 32 * 1.4 = 44.8 is rounded by _make_divisible to 48, a multiple of 8."""
    g = cnnspec.load(SPECS / "mobilenet-v2.yaml", sets={"width": 1.4}).graph
    assert g.node("features.0.0").shape[0] == 48
    assert g.node("features.18.0").shape[0] == 1792      # 1280 * max(1.0, 1.4)
    small = cnnspec.load(SPECS / "mobilenet-v2.yaml", sets={"width": 0.35}).graph   # any width
    assert small.params == _params(torchvision_mobilenet_v2_keys(0.35))


@pytest.mark.parametrize("family,scale,single", [("efficientnet", None, "efficientnet-b0"),
                                                 ("resnet", "18", "resnet18"), ("resnet", "50", "resnet50"),
                                                 ("resnet", "101", "resnet101")])
def test_a_family_scale_is_the_single_net_file(family, scale, single):
    """The single-net files stay; each is its family at one scale, layer for layer."""
    a = cnnspec.load(SPECS / f"{family}.yaml", scale=scale).graph
    b = cnnspec.load(SPECS / f"{single}.yaml").graph
    assert [(n.name, n.op, n.inputs, n.shape, dict(n.attrs)) for n in a.nodes] == \
        [(n.name, n.op, n.inputs, n.shape, dict(n.attrs)) for n in b.nodes]


def test_a_family_takes_other_values_too():
    g = cnnspec.load(SPECS / "efficientnet.yaml", scale="b3", sets={"num_classes": 10, "resolution": 64}).graph
    assert g.output_shape == (10,) and g.input_shape == (3, 64, 64)
    assert g.node("features.7.0.block.3.0").shape == (384, 2, 2)   # 320 * 1.2; the expectations follow the resolution
