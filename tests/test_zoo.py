"""The model zoo in specs/: every spec checks, and the counts and weight names are the published ones.

Framework-free: the reference weight keys below are generated from torchvision's constructors as
they are written in its source (ResNet's layers and downsample rule, MobileNetV2's inverted
residual settings), independently of the specs' block language, so a wrong block or a wrong repeat
shows up as a missing, extra or misshapen key.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import cnnspec
from cnnspec.weights.neutral import expected_weights

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
TUTORIALS = ("keras-mnist-cnn", "coal-gangue-cnn", "numpy-mnist-cnn", "pytorch-cifar-cnn", "alexnet-style")


def graph(name: str):
    return cnnspec.load(ROOT / "specs" / f"{name}.yaml").graph


# name -> total trainable parameters, with where the figure comes from.
PARAMS = {
    # torchvision's published figures (its model docs, "num_params" in the weights' meta)
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "mobilenet-v2": 3_504_872,
    "efficientnet-b0": 5_288_548,
    "mobilenet-v3-large": 5_483_032,
    "mobilenet-v3-small": 2_542_856,
    "densenet121": 7_978_856,
    "squeezenet1-1": 1_235_496,
    "googlenet": 6_624_904,        # without the auxiliary classifiers (aux_logits=False)
    # Darknet's cfg/yolov3-tiny.cfg as Darknet counts it: two outputs, the raw heads
    "yolov3-tiny": 8_852_366,
    "convnext-tiny": 28_589_128,
    # U-Net as milesial/Pytorch-UNet builds it (n_channels=3, n_classes=2, bilinear=False), counted by
    # hand: a DoubleConv(i, o) is two bias-free 3x3 convolutions, each with batchnorm (2 params per channel)
    "unet": (sum(9*i*o + 2*o + 9*o*o + 2*o for i, o in ((3, 64), (64, 128), (128, 256), (256, 512), (512, 1024)))
             + sum((c*(c // 2)*2*2 + c // 2) + (9*c*(c // 2) + c + 9*(c // 2)**2 + c)   # ConvTranspose2d + DoubleConv
                   for c in (1024, 512, 256, 128))
             + (64*2 + 2)),                                                              # outc: 1x1 with bias
    # LeNet-5 as usually rebuilt (C3 fully connected, no trainable subsampling coefficients)
    "lenet-5": (5*5*1*6 + 6) + (5*5*6*16 + 16) + (5*5*16*120 + 120) + (120*84 + 84) + (84*10 + 10),
    # The tutorials print no model.summary(); these are their layer definitions, counted by hand.
    "keras-mnist-cnn": (5*5*1*32 + 32) + (5*5*32*64 + 64) + (7*7*64*1024 + 1024) + (1024*10 + 10),
    "coal-gangue-cnn": ((5*5*1*8 + 8) + (3*3*8*16 + 16) + (3*3*16*32 + 32) + (3*3*32*64 + 64)
                        + (5*5*64*64 + 64) + (64*2 + 2)),
    "numpy-mnist-cnn": 8*3*3 + (13*13*8*10 + 10),   # Conv3x3(8) has no bias; Softmax(13*13*8, 10)
    "pytorch-cifar-cnn": (3*3*3*32 + 32) + (3*3*32*64 + 64) + (64*8*8*128 + 128) + (128*10 + 10),
    "alexnet-style": (11*11*3*48 + 48) + (5*5*48*128 + 128) + (128*13*13*2048 + 2048) + (2048*1000 + 1000),
    "digits": 3*3*1*32 + 2*32 + 3*3*32*64 + 2*64 + (1024*128 + 128) + (128*10 + 10),
}

# torchvision's published GFLOPS at 3x224x224, which are multiply-accumulates, to two decimals.
GMACS = {"resnet18": 1.81, "resnet50": 4.09, "resnet101": 7.80, "mobilenet-v2": 0.30,
         "efficientnet-b0": 0.39, "mobilenet-v3-large": 0.22, "mobilenet-v3-small": 0.06,
         "alexnet": 0.71, "vgg16": 15.47, "densenet121": 2.83,
         "squeezenet1-1": 0.35, "googlenet": 1.50, "convnext-tiny": 4.46}


def test_the_zoo_is_complete():
    assert {p.stem for p in SPECS} >= set(PARAMS)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_loads_and_checks(path):
    spec = cnnspec.load(path)
    g = spec.graph
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", path.stem), "spec files are kebab-case"
    assert g.name == path.stem
    assert g.description and len(g.description) > 40, "say where the net comes from"
    assert len(g.input_shape) == 3
    assert g.params > 0 and g.macs > 0
    if g.classes is not None:
        assert g.output_shape == (len(g.classes),)


@pytest.mark.parametrize("name,params", sorted(PARAMS.items()))
def test_total_params_are_the_published_figures(name, params):
    assert graph(name).params == params


@pytest.mark.parametrize("name,gmacs", sorted(GMACS.items()))
def test_macs_are_torchvisions_gflops(name, gmacs):
    assert round(graph(name).macs / 1e9, 2) == gmacs


# -- torchvision's state_dict keys, generated from its constructors ---------------------------
BN_PARTS = ("weight", "bias", "running_mean", "running_var")


class _Keys(dict):
    def conv(self, name, out, inp, k, groups=1, bias=False):
        self[f"{name}.weight"] = (out, inp // groups, k, k)
        if bias:
            self[f"{name}.bias"] = (out,)

    def bn(self, name, c):
        for part in BN_PARTS:
            self[f"{name}.{part}"] = (c,)

    def linear(self, name, out, inp):
        self[f"{name}.weight"] = (out, inp)
        self[f"{name}.bias"] = (out,)


def torchvision_resnet_keys(block: str, layers: list[int]) -> dict:
    """torchvision.models.resnet.ResNet(block, layers).state_dict() shapes, minus num_batches_tracked."""
    keys = _Keys()
    expansion = 1 if block == "basic" else 4
    keys.conv("conv1", 64, 3, 7)
    keys.bn("bn1", 64)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        for j in range(blocks):
            stride = 2 if stage > 0 and j == 0 else 1
            p = f"layer{stage + 1}.{j}"
            if block == "basic":
                keys.conv(f"{p}.conv1", planes, inplanes, 3)
                keys.bn(f"{p}.bn1", planes)
                keys.conv(f"{p}.conv2", planes, planes, 3)
                keys.bn(f"{p}.bn2", planes)
            else:
                keys.conv(f"{p}.conv1", planes, inplanes, 1)
                keys.bn(f"{p}.bn1", planes)
                keys.conv(f"{p}.conv2", planes, planes, 3)
                keys.bn(f"{p}.bn2", planes)
                keys.conv(f"{p}.conv3", planes * 4, planes, 1)
                keys.bn(f"{p}.bn3", planes * 4)
            if j == 0 and (stride != 1 or inplanes != planes * expansion):
                keys.conv(f"{p}.downsample.0", planes * expansion, inplanes, 1)
                keys.bn(f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    keys.linear("fc", 1000, 512 * expansion)
    return dict(keys)


def torchvision_mobilenet_v2_keys(width: float = 1.0) -> dict:
    """torchvision.models.MobileNetV2(width_mult=width).state_dict() shapes, minus num_batches_tracked."""
    keys = _Keys()
    inp = _make_divisible(32 * width, 8)
    last = _make_divisible(1280 * max(1.0, width), 8)
    _conv_norm(keys, "features.0", inp, 3, 3)
    index = 1
    for t, c, n, _ in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                       [6, 320, 1, 1]]:
        out = _make_divisible(c * width, 8)
        for _ in range(n):
            hidden, p, i = int(round(inp * t)), f"features.{index}.conv", 0
            if t != 1:
                _conv_norm(keys, f"{p}.0", hidden, inp, 1)
                i = 1
            _conv_norm(keys, f"{p}.{i}", hidden, hidden, 3, groups=hidden)
            keys.conv(f"{p}.{i + 1}", out, hidden, 1)
            keys.bn(f"{p}.{i + 2}", out)
            inp, index = out, index + 1
    _conv_norm(keys, f"features.{index}", last, inp, 1)
    keys.linear("classifier.1", 1000, last)
    return dict(keys)


def _make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision.models._utils._make_divisible: the nearest multiple of divisor, never 10% below v."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_norm(keys, name, out, inp, k, groups=1):
    """Conv2dNormActivation: a Sequential of conv (0, no bias), batchnorm (1) and maybe an activation."""
    keys.conv(f"{name}.0", out, inp, k, groups=groups)
    keys.bn(f"{name}.1", out)


def _squeeze_excitation(keys, name, channels, squeeze):
    """torchvision.ops.SqueezeExcitation: fc1 and fc2 are 1x1 Conv2d with bias."""
    keys.conv(f"{name}.fc1", squeeze, channels, 1, bias=True)
    keys.conv(f"{name}.fc2", channels, squeeze, 1, bias=True)


def torchvision_efficientnet_keys(width: float = 1.0, depth: float = 1.0) -> dict:
    """torchvision.models.efficientnet._efficientnet_conf(width_mult, depth_mult) built by EfficientNet:
    MBConvConfig.adjust_channels (_make_divisible(c * width, 8)) and adjust_depth (ceil(n * depth))."""
    keys = _Keys()
    # (expand_ratio, kernel, stride, input_channels, out_channels, num_layers)
    settings = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
                (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    adjust = lambda c: _make_divisible(c * width, 8)  # noqa: E731
    _conv_norm(keys, "features.0", adjust(32), 3, 3)
    for stage, (ratio, kernel, _, first_in, out, layers) in enumerate(settings, start=1):
        first_in, out = adjust(first_in), adjust(out)
        for j in range(int(math.ceil(layers * depth))):
            inp = first_in if j == 0 else out
            p, i = f"features.{stage}.{j}.block", 0
            expanded = _make_divisible(inp * ratio, 8)
            if expanded != inp:
                _conv_norm(keys, f"{p}.{i}", expanded, inp, 1)
                i += 1
            _conv_norm(keys, f"{p}.{i}", expanded, expanded, kernel, groups=expanded)
            _squeeze_excitation(keys, f"{p}.{i + 1}", expanded, max(1, inp // 4))
            _conv_norm(keys, f"{p}.{i + 2}", out, expanded, 1)
    last_in = adjust(320)
    _conv_norm(keys, "features.8", 4 * last_in, last_in, 1)
    keys.linear("classifier.1", 1000, 4 * last_in)
    return dict(keys)


# torchvision's _mobilenet_v3_conf: (input_channels, kernel, expanded_channels, out_channels, use_se,
# activation, stride, dilation) per InvertedResidual, and the classifier's last_channel
MOBILENET_V3 = {
    "large": ([(16, 3, 16, 16, False, "RE", 1, 1), (16, 3, 64, 24, False, "RE", 2, 1), (24, 3, 72, 24, False, "RE", 1, 1),
               (24, 5, 72, 40, True, "RE", 2, 1), (40, 5, 120, 40, True, "RE", 1, 1), (40, 5, 120, 40, True, "RE", 1, 1),
               (40, 3, 240, 80, False, "HS", 2, 1), (80, 3, 200, 80, False, "HS", 1, 1),
               (80, 3, 184, 80, False, "HS", 1, 1), (80, 3, 184, 80, False, "HS", 1, 1),
               (80, 3, 480, 112, True, "HS", 1, 1), (112, 3, 672, 112, True, "HS", 1, 1),
               (112, 5, 672, 160, True, "HS", 2, 1), (160, 5, 960, 160, True, "HS", 1, 1),
               (160, 5, 960, 160, True, "HS", 1, 1)], 1280),
    "small": ([(16, 3, 16, 16, True, "RE", 2, 1), (16, 3, 72, 24, False, "RE", 2, 1), (24, 3, 88, 24, False, "RE", 1, 1),
               (24, 5, 96, 40, True, "HS", 2, 1), (40, 5, 240, 40, True, "HS", 1, 1), (40, 5, 240, 40, True, "HS", 1, 1),
               (40, 5, 120, 48, True, "HS", 1, 1), (48, 5, 144, 48, True, "HS", 1, 1),
               (48, 5, 288, 96, True, "HS", 2, 1), (96, 5, 576, 96, True, "HS", 1, 1),
               (96, 5, 576, 96, True, "HS", 1, 1)], 1024),
}


def torchvision_mobilenet_v3_keys(arch: str) -> dict:
    """torchvision.models.mobilenet_v3_large/small().state_dict() shapes, minus num_batches_tracked."""
    settings, last_channel = MOBILENET_V3[arch]
    keys = _Keys()
    _conv_norm(keys, "features.0", settings[0][0], 3, 3)
    for index, (inp, kernel, expanded, out, use_se, _, _, _) in enumerate(settings, start=1):
        p, i = f"features.{index}.block", 0
        if expanded != inp:
            _conv_norm(keys, f"{p}.{i}", expanded, inp, 1)
            i += 1
        _conv_norm(keys, f"{p}.{i}", expanded, expanded, kernel, groups=expanded)
        if use_se:
            i += 1
            _squeeze_excitation(keys, f"{p}.{i}", expanded, _make_divisible(expanded // 4, 8))
        _conv_norm(keys, f"{p}.{i + 1}", out, expanded, 1)
    last_in = settings[-1][3]
    _conv_norm(keys, f"features.{len(settings) + 1}", 6 * last_in, last_in, 1)
    keys.linear("classifier.0", last_channel, 6 * last_in)
    keys.linear("classifier.3", 1000, last_channel)
    return dict(keys)


def torchvision_densenet121_keys() -> dict:
    """torchvision.models.densenet121().state_dict() shapes, minus num_batches_tracked."""
    keys = _Keys()
    keys.conv("features.conv0", 64, 3, 7)
    keys.bn("features.norm0", 64)
    channels, growth, width = 64, 32, 4 * 32
    for b, layers in enumerate((6, 12, 24, 16), 1):
        for j in range(1, layers + 1):
            p = f"features.denseblock{b}.denselayer{j}"
            keys.bn(f"{p}.norm1", channels + (j - 1) * growth)
            keys.conv(f"{p}.conv1", width, channels + (j - 1) * growth, 1)
            keys.bn(f"{p}.norm2", width)
            keys.conv(f"{p}.conv2", growth, width, 3)
        channels += layers * growth
        if b < 4:
            keys.bn(f"features.transition{b}.norm", channels)
            keys.conv(f"features.transition{b}.conv", channels // 2, channels, 1)
            channels //= 2
    keys.bn("features.norm5", channels)
    keys.linear("classifier", 1000, channels)
    return dict(keys)


def torchvision_squeezenet1_1_keys() -> dict:
    """torchvision.models.squeezenet1_1().state_dict() shapes: features.0 conv, Fire modules at their
    Sequential indices (pools at 2, 5, 8), classifier.1 the final 1x1 conv."""
    keys = _Keys()
    keys.conv("features.0", 64, 3, 3, bias=True)
    fires = {3: (64, 16, 64, 64), 4: (128, 16, 64, 64), 6: (128, 32, 128, 128), 7: (256, 32, 128, 128),
             9: (256, 48, 192, 192), 10: (384, 48, 192, 192), 11: (384, 64, 256, 256), 12: (512, 64, 256, 256)}
    for index, (inplanes, squeeze, e1, e3) in fires.items():   # Fire(inplanes, squeeze, expand1x1, expand3x3)
        keys.conv(f"features.{index}.squeeze", squeeze, inplanes, 1, bias=True)
        keys.conv(f"features.{index}.expand1x1", e1, squeeze, 1, bias=True)
        keys.conv(f"features.{index}.expand3x3", e3, squeeze, 3, bias=True)
    keys.conv("classifier.1", 1000, 512, 1, bias=True)
    return dict(keys)


def torchvision_googlenet_keys() -> dict:
    """torchvision.models.googlenet(aux_logits=False).state_dict() shapes, minus num_batches_tracked:
    BasicConv2d is conv (no bias) + bn; Inception's arguments as its source passes them."""
    keys = _Keys()

    def basic(name, out, inp, k):
        keys.conv(f"{name}.conv", out, inp, k)
        keys.bn(f"{name}.bn", out)

    basic("conv1", 64, 3, 7)
    basic("conv2", 64, 64, 1)
    basic("conv3", 192, 64, 3)
    inceptions = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
                  "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
                  "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
                  "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
                  "5b": (832, 384, 192, 384, 48, 128, 128)}
    for n, (inp, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj) in inceptions.items():
        p = f"inception{n}"
        basic(f"{p}.branch1", ch1x1, inp, 1)
        basic(f"{p}.branch2.0", ch3x3red, inp, 1)
        basic(f"{p}.branch2.1", ch3x3, ch3x3red, 3)
        basic(f"{p}.branch3.0", ch5x5red, inp, 1)
        basic(f"{p}.branch3.1", ch5x5, ch5x5red, 3)   # kernel_size=3 in torchvision, 5x5 in the paper
        basic(f"{p}.branch4.1", pool_proj, inp, 1)    # branch4.0 is the max pool
    keys.linear("fc", 1000, 1024)
    return dict(keys)


def torchvision_convnext_tiny_keys() -> dict:
    """torchvision.models.convnext_tiny().state_dict() shapes, in its order: a CNBlock's own parameter
    layer_scale [C, 1, 1] comes before its submodules' (block.0 depthwise conv, block.2 LayerNorm,
    block.3 and block.5 Linear); a Sequential(LayerNorm2d, Conv2d k2 s2) between stages."""
    keys = _Keys()
    keys.conv("features.0.0", 96, 3, 4, bias=True)
    keys["features.0.1.weight"], keys["features.0.1.bias"] = (96,), (96,)
    index = 1
    for dim, out, layers in ((96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)):   # CNBlockConfig
        for j in range(layers):
            p = f"features.{index}.{j}"
            keys[f"{p}.layer_scale"] = (dim, 1, 1)
            keys.conv(f"{p}.block.0", dim, dim, 7, groups=dim, bias=True)
            keys[f"{p}.block.2.weight"], keys[f"{p}.block.2.bias"] = (dim,), (dim,)
            keys.linear(f"{p}.block.3", 4 * dim, dim)
            keys.linear(f"{p}.block.5", dim, 4 * dim)
        index += 1
        if out is not None:
            keys[f"features.{index}.0.weight"], keys[f"features.{index}.0.bias"] = (dim,), (dim,)
            keys.conv(f"features.{index}.1", out, dim, 2, bias=True)
            index += 1
    keys["classifier.0.weight"], keys["classifier.0.bias"] = (768,), (768,)
    keys.linear("classifier.2", 1000, 768)
    return dict(keys)


# The two places where the language's ConvNeXt differs from torchvision's keys: its Linear layers on
# channels-last tensors are 1x1 convolutions here, and its layer_scale parameter is the 'scale' op's
# weight. A torchvision checkpoint converts key by key (the same numbers, reshaped); specs/README.md
# shows this table. (torchvision key pattern, our key, our shape from torchvision's)
CONVNEXT_FROM_TORCHVISION = [
    (r"(features\.\d+\.\d+)\.layer_scale", r"\1.layer_scale.weight", lambda s: (s[0],)),    # [C, 1, 1] -> [C]
    (r"(features\.\d+\.\d+\.block\.[35])\.weight", r"\1.weight", lambda s: (*s, 1, 1)),   # [out, in] -> [out, in, 1, 1]
]


def from_torchvision(keys: dict, table) -> dict:
    """Keys and shapes after the table's renames and reshapes; every other key stays as it is."""
    out = {}
    for key, shape in keys.items():
        for pattern, ours, reshape in table:
            if re.fullmatch(pattern, key):
                key, shape = re.sub(pattern, ours, key), reshape(shape)
                break
        out[key] = shape
    return out


def milesial_unet_keys(n_channels=3, n_classes=2) -> dict:
    """milesial/Pytorch-UNet's UNet(n_channels, n_classes, bilinear=False).state_dict() shapes (unet/
    unet_model.py, unet/unet_parts.py): DoubleConv = Sequential(conv, BN, ReLU, conv, BN, ReLU) named
    double_conv; Down = Sequential(MaxPool2d(2), DoubleConv) named maxpool_conv; Up = ConvTranspose2d
    (in, in // 2, 2, stride 2) named up, then DoubleConv(in, out) named conv; OutConv's 1x1 named conv."""
    keys = _Keys()

    def double_conv(p, inp, out):
        keys.conv(f"{p}.double_conv.0", out, inp, 3)
        keys.bn(f"{p}.double_conv.1", out)
        keys.conv(f"{p}.double_conv.3", out, out, 3)
        keys.bn(f"{p}.double_conv.4", out)

    double_conv("inc", n_channels, 64)
    for k, (inp, out) in enumerate(((64, 128), (128, 256), (256, 512), (512, 1024)), 1):
        double_conv(f"down{k}.maxpool_conv.1", inp, out)
    for k, (inp, out) in enumerate(((1024, 512), (512, 256), (256, 128), (128, 64)), 1):
        keys[f"up{k}.up.weight"], keys[f"up{k}.up.bias"] = (inp, inp // 2, 2, 2), (inp // 2,)  # [C_in, C_out, kh, kw]
        double_conv(f"up{k}.conv", inp, out)
    keys.conv("outc.conv", n_classes, 64, 1, bias=True)
    return dict(keys)


TORCHVISION_KEYS = {
    "densenet121": torchvision_densenet121_keys,
    "squeezenet1-1": torchvision_squeezenet1_1_keys,
    "googlenet": torchvision_googlenet_keys,
    "convnext-tiny": lambda: from_torchvision(torchvision_convnext_tiny_keys(), CONVNEXT_FROM_TORCHVISION),
    "resnet18": lambda: torchvision_resnet_keys("basic", [2, 2, 2, 2]),
    "resnet50": lambda: torchvision_resnet_keys("bottleneck", [3, 4, 6, 3]),
    "resnet101": lambda: torchvision_resnet_keys("bottleneck", [3, 4, 23, 3]),
    "mobilenet-v2": torchvision_mobilenet_v2_keys,
    "efficientnet-b0": torchvision_efficientnet_keys,
    "mobilenet-v3-large": lambda: torchvision_mobilenet_v3_keys("large"),
    "mobilenet-v3-small": lambda: torchvision_mobilenet_v3_keys("small"),
}


# reference implementations outside torchvision, generated the same way from their source
PORT_KEYS = {"unet": milesial_unet_keys}


@pytest.mark.parametrize("name", sorted(TORCHVISION_KEYS) + sorted(PORT_KEYS))
def test_weight_keys_are_torchvisions_state_dict(name):
    ours = expected_weights(graph(name))
    theirs = {**TORCHVISION_KEYS, **PORT_KEYS}[name]()
    assert sorted(set(theirs) - set(ours)) == [], "keys torchvision has and the spec lacks"
    assert sorted(set(ours) - set(theirs)) == [], "keys the spec has and torchvision lacks"
    assert ours == theirs
    # same order as torchvision's state_dict, but for ConvNeXt's layer_scale, a parameter of the block
    # itself, which PyTorch lists before the block's submodules (the order does not matter to loading)
    in_order = lambda keys: [k for k in keys if not k.endswith("layer_scale.weight")]  # noqa: E731
    assert in_order(ours) == in_order(theirs), "same order as torchvision's state_dict"
    assert sum(_numel(s) for k, s in ours.items() if not k.endswith(("running_mean", "running_var"))) \
        == PARAMS[name]


def test_convnext_differs_from_torchvision_only_where_the_table_says():
    """Without the table, exactly the Linear weights (block.3, block.5) and the layer scales differ;
    the same number of values, so a torchvision checkpoint converts by reshaping alone."""
    ours, theirs = expected_weights(graph("convnext-tiny")), torchvision_convnext_tiny_keys()
    renamed = {k: f"{k}.weight" for k in theirs if k.endswith(".layer_scale")}
    assert sorted(set(ours) - set(theirs)) == sorted(renamed.values())
    assert sorted(set(theirs) - set(ours)) == sorted(renamed)
    reshaped = sorted(k for k in theirs if k in ours and ours[k] != theirs[k])
    assert reshaped == sorted(k for k in theirs if re.fullmatch(r"features\.\d\.\d\.block\.[35]\.weight", k))
    assert len(reshaped) == 2 * 18 and len(renamed) == 18   # two Linears and a layer scale in each of 18 blocks
    assert all(_numel(ours[k]) == _numel(theirs[k]) for k in reshaped)
    assert all(_numel(ours[v]) == _numel(theirs[k]) for k, v in renamed.items())
    assert ours["features.5.8.block.3.weight"] == (1536, 384, 1, 1)
    assert theirs["features.5.8.block.3.weight"] == (1536, 384)
    assert ours["features.7.2.layer_scale.weight"] == (768,) and theirs["features.7.2.layer_scale"] == (768, 1, 1)


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


# A handful of exact keys, written out, in case the generators above share a mistake with the specs.
SPOT_CHECKS = [
    ("resnet18", "conv1.weight", (64, 3, 7, 7)),
    ("resnet18", "layer1.0.conv1.weight", (64, 64, 3, 3)),
    ("resnet18", "layer2.0.downsample.0.weight", (128, 64, 1, 1)),
    ("resnet18", "layer4.1.bn2.running_var", (512,)),
    ("resnet18", "fc.weight", (1000, 512)),
    ("resnet50", "layer1.0.downsample.0.weight", (256, 64, 1, 1)),
    ("resnet50", "layer2.0.conv2.weight", (128, 128, 3, 3)),
    ("resnet50", "layer3.5.bn3.running_mean", (1024,)),
    ("resnet50", "layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("resnet50", "fc.weight", (1000, 2048)),
    ("resnet50", "fc.bias", (1000,)),
    ("resnet101", "layer3.22.conv2.weight", (256, 256, 3, 3)),
    ("mobilenet-v2", "features.0.0.weight", (32, 3, 3, 3)),
    ("mobilenet-v2", "features.1.conv.0.0.weight", (32, 1, 3, 3)),
    ("mobilenet-v2", "features.1.conv.1.weight", (16, 32, 1, 1)),
    ("mobilenet-v2", "features.2.conv.1.0.weight", (96, 1, 3, 3)),
    ("mobilenet-v2", "features.17.conv.3.running_var", (320,)),
    ("mobilenet-v2", "features.18.0.weight", (1280, 320, 1, 1)),
    ("mobilenet-v2", "classifier.1.weight", (1000, 1280)),
    ("efficientnet-b0", "features.0.0.weight", (32, 3, 3, 3)),
    ("efficientnet-b0", "features.1.0.block.0.0.weight", (32, 1, 3, 3)),       # expand ratio 1: depthwise first
    ("efficientnet-b0", "features.1.0.block.1.fc1.weight", (8, 32, 1, 1)),
    ("efficientnet-b0", "features.1.0.block.1.fc1.bias", (8,)),
    ("efficientnet-b0", "features.1.0.block.2.0.weight", (16, 32, 1, 1)),
    ("efficientnet-b0", "features.2.0.block.0.0.weight", (96, 16, 1, 1)),
    ("efficientnet-b0", "features.2.0.block.2.fc2.weight", (96, 4, 1, 1)),     # squeeze = 16 // 4
    ("efficientnet-b0", "features.2.0.block.3.1.running_var", (24,)),
    ("efficientnet-b0", "features.3.1.block.1.0.weight", (240, 1, 5, 5)),
    ("efficientnet-b0", "features.6.3.block.2.fc1.weight", (48, 1152, 1, 1)),
    ("efficientnet-b0", "features.7.0.block.3.0.weight", (320, 1152, 1, 1)),
    ("efficientnet-b0", "features.8.0.weight", (1280, 320, 1, 1)),
    ("efficientnet-b0", "classifier.1.weight", (1000, 1280)),
    ("mobilenet-v3-large", "features.0.0.weight", (16, 3, 3, 3)),
    ("mobilenet-v3-large", "features.1.block.0.0.weight", (16, 1, 3, 3)),      # no expansion, no SE
    ("mobilenet-v3-large", "features.1.block.1.0.weight", (16, 16, 1, 1)),
    ("mobilenet-v3-large", "features.2.block.2.1.running_mean", (24,)),
    ("mobilenet-v3-large", "features.4.block.2.fc1.weight", (24, 72, 1, 1)),   # _make_divisible(18, 8) = 24
    ("mobilenet-v3-large", "features.4.block.3.0.weight", (40, 72, 1, 1)),
    ("mobilenet-v3-large", "features.5.block.2.fc2.weight", (120, 32, 1, 1)),
    ("mobilenet-v3-large", "features.15.block.2.fc1.bias", (240,)),
    ("mobilenet-v3-large", "features.16.0.weight", (960, 160, 1, 1)),
    ("mobilenet-v3-large", "classifier.0.weight", (1280, 960)),
    ("mobilenet-v3-large", "classifier.3.weight", (1000, 1280)),
    ("mobilenet-v3-small", "features.1.block.0.0.weight", (16, 1, 3, 3)),
    ("mobilenet-v3-small", "features.1.block.1.fc1.weight", (8, 16, 1, 1)),     # no expansion, but SE
    ("mobilenet-v3-small", "features.1.block.2.1.weight", (16,)),
    ("mobilenet-v3-small", "features.2.block.2.0.weight", (24, 72, 1, 1)),
    ("mobilenet-v3-small", "features.5.block.2.fc1.weight", (64, 240, 1, 1)),  # _make_divisible(60, 8) = 64
    ("mobilenet-v3-small", "features.11.block.3.1.running_var", (96,)),
    ("mobilenet-v3-small", "features.12.0.weight", (576, 96, 1, 1)),
    ("mobilenet-v3-small", "classifier.0.weight", (1024, 576)),
    ("mobilenet-v3-small", "classifier.3.bias", (1000,)),
    ("densenet121", "features.denseblock1.denselayer1.norm1.weight", (64,)),
    ("densenet121", "features.denseblock2.denselayer12.conv1.weight", (128, 480, 1, 1)),
    ("densenet121", "features.transition3.conv.weight", (512, 1024, 1, 1)),
    ("densenet121", "features.norm5.running_var", (1024,)),
    ("densenet121", "classifier.weight", (1000, 1024)),
    ("squeezenet1-1", "features.0.weight", (64, 3, 3, 3)),
    ("squeezenet1-1", "features.3.squeeze.weight", (16, 64, 1, 1)),
    ("squeezenet1-1", "features.7.expand3x3.weight", (128, 32, 3, 3)),
    ("squeezenet1-1", "features.12.expand1x1.bias", (256,)),
    ("squeezenet1-1", "classifier.1.weight", (1000, 512, 1, 1)),
    ("googlenet", "conv1.conv.weight", (64, 3, 7, 7)),
    ("googlenet", "conv3.bn.running_mean", (192,)),
    ("googlenet", "inception3a.branch3.1.conv.weight", (32, 16, 3, 3)),   # torchvision's "5x5" is 3x3
    ("googlenet", "inception4e.branch4.1.conv.weight", (128, 528, 1, 1)),
    ("googlenet", "inception5b.branch2.1.bn.weight", (384,)),
    ("googlenet", "fc.weight", (1000, 1024)),
    ("convnext-tiny", "features.0.0.weight", (96, 3, 4, 4)),
    ("convnext-tiny", "features.0.1.bias", (96,)),
    ("convnext-tiny", "features.1.0.block.0.weight", (96, 1, 7, 7)),
    ("convnext-tiny", "features.3.2.block.2.weight", (192,)),
    ("convnext-tiny", "features.5.8.block.3.weight", (1536, 384, 1, 1)),   # torchvision: (1536, 384)
    ("convnext-tiny", "features.5.8.block.5.bias", (384,)),
    ("convnext-tiny", "features.7.2.layer_scale.weight", (768,)),          # torchvision: layer_scale (768, 1, 1)
    ("convnext-tiny", "features.6.1.weight", (768, 384, 2, 2)),
    ("convnext-tiny", "classifier.0.weight", (768,)),
    ("convnext-tiny", "classifier.2.weight", (1000, 768)),
    ("unet", "inc.double_conv.0.weight", (64, 3, 3, 3)),
    ("unet", "down4.maxpool_conv.1.double_conv.3.weight", (1024, 1024, 3, 3)),
    ("unet", "up1.up.weight", (1024, 512, 2, 2)),
    ("unet", "up1.conv.double_conv.0.weight", (512, 1024, 3, 3)),
    ("unet", "up4.conv.double_conv.4.running_var", (64,)),
    ("unet", "outc.conv.bias", (2,)),
    ("vgg16", "features.28.weight", (512, 512, 3, 3)),
    ("vgg16", "classifier.0.weight", (4096, 25088)),
    ("vgg16", "classifier.6.bias", (1000,)),
    ("alexnet", "features.0.weight", (64, 3, 11, 11)),
    ("alexnet", "features.10.weight", (256, 256, 3, 3)),
    ("alexnet", "classifier.1.weight", (4096, 9216)),
    ("alexnet", "classifier.6.weight", (1000, 4096)),
    ("coal-gangue-cnn", "covn1.0.weight", (8, 1, 5, 5)),   # the article's own module name
    ("coal-gangue-cnn", "layer1.weight", (2, 64)),
    ("numpy-mnist-cnn", "softmax.weight", (10, 1352)),
]


@pytest.mark.parametrize("name,key,shape", SPOT_CHECKS, ids=[f"{n}:{k}" for n, k, _ in SPOT_CHECKS])
def test_weight_key_spot_checks(name, key, shape):
    assert expected_weights(graph(name)).get(key) == shape


@pytest.mark.parametrize("name", sorted({"resnet18", "resnet50", "resnet101", "mobilenet-v2", "densenet121",
                                         "googlenet", "efficientnet-b0", "mobilenet-v3-large",
                                         "mobilenet-v3-small"}))
def test_no_bias_where_torchvision_has_none(name):
    """torchvision's convolutions before batchnorm have bias=False; only the classifier has one, and
    squeeze-and-excite's fc1 and fc2 (1x1 convolutions with bias, read by no batchnorm)."""
    biased = [k for k in expected_weights(graph(name)) if k.endswith(".bias")]
    g = graph(name)
    for key in biased:
        node = g.node(key[: -len(".bias")])
        assert node.op in ("batchnorm", "dense") or (node.op == "conv2d" and node.name.endswith((".fc1", ".fc2"))), key


@pytest.mark.parametrize("name,eps,momentum", [("efficientnet-b0", 1e-5, 0.1), ("mobilenet-v3-large", 1e-3, 0.01),
                                               ("mobilenet-v3-small", 1e-3, 0.01)])
def test_batchnorm_settings_are_torchvisions(name, eps, momentum):
    """MobileNetV3's norm_layer is BatchNorm2d(eps=0.001, momentum=0.01); EfficientNet-B0's the default."""
    norms = [n for n in graph(name).nodes if n.op == "batchnorm"]
    assert norms and all(n.attrs["eps"] == eps and n.attrs["momentum"] == momentum for n in norms)


@pytest.mark.parametrize("name", ["efficientnet-b0", "mobilenet-v3-large", "mobilenet-v3-small"])
def test_squeeze_excite_and_activations_are_torchvisions(name):
    """Each SE gates its block's depthwise output: pool kept [C, 1, 1], fc1, act, fc2, gate, flatten,
    multiply; EfficientNet's act is SiLU with a sigmoid gate, MobileNetV3's relu with hard_sigmoid."""
    g = graph(name)
    gates = [n for n in g.nodes if n.op == "multiply"]
    assert gates
    act, gate = ("silu", "sigmoid") if name.startswith("efficientnet") else ("relu", "hard_sigmoid")
    for m in gates:
        se = m.name.rsplit(".", 1)[0]
        assert g.node(f"{se}.avgpool").shape == (g.node(f"{se}.fc2").shape[0], 1, 1)
        assert g.node(f"{se}.activation").op == act and g.node(f"{se}.scale_activation").op == gate
        assert m.inputs[0] == g.node(f"{se}.avgpool").inputs[0]     # the map the pool read
        assert m.shape == g.node(m.inputs[0]).shape


def test_mobilenet_v3_activations_per_stage():
    """torchvision's RE/HS column: relu in large's features.1-6, hard-swish from features.7 on."""
    g = graph("mobilenet-v3-large")
    assert g.node("features.0.2").op == "hard_swish"
    assert g.node("features.3.block.0.2").op == "relu" and g.node("features.6.block.1.2").op == "relu"
    assert g.node("features.7.block.0.2").op == "hard_swish" and g.node("features.15.block.1.2").op == "hard_swish"
    assert g.node("features.16.2").op == "hard_swish" and g.node("classifier.1").op == "hard_swish"
    residual = {n.name.split(".block")[0].rsplit(".", 1)[0] for n in g.nodes if n.op == "add"}
    assert residual == {f"features.{i}" for i in (1, 3, 5, 6, 8, 9, 10, 12, 14, 15)}


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_specs_carry_the_articles_shape_comments(name):
    assert sum(n.expect is not None for n in graph(name).nodes) >= 3


def test_the_cifar_articles_hand_sizing_bug_is_caught_where_it_happens():
    """The article sizes fc1 for 64*5*5; the spec's description says the checker reports it."""
    text = (ROOT / "specs" / "pytorch-cifar-cnn.yaml").read_text(encoding="utf-8")
    as_in_article = text.replace("{flatten: null, expect: [4096]}", "{flatten: null, expect: [1600]}")
    assert as_in_article != text
    with pytest.raises(cnnspec.SpecError) as err:
        cnnspec.loads(as_in_article, "pytorch-cifar-cnn.yaml")
    message = str(err.value)
    assert "output is [4096], but expect says [1600]" in message
    assert len(message.strip().splitlines()) == 1, "one error, at the flatten, not again at every later layer"


def test_digits_fits_the_sklearn_digits_set():
    g = graph("digits")
    assert g.input_shape == (1, 8, 8)
    assert g.classes == tuple(str(d) for d in range(10))
    assert g.output_shape == (10,)
    assert g.params < 200_000 and g.macs < 2_000_000, "small enough to train in seconds on a CPU"


def test_unet_is_a_segmentation_map_with_its_skips_first():
    """The output is a score per class per pixel at the input's size; each up block concatenates the
    encoder's output before the upsampled map (torch.cat([x2, x1])); MACs counted by hand."""
    g = graph("unet")
    assert g.input_shape == (3, 256, 256) and g.output_shape == (2, 256, 256) and g.classes is None
    assert g.node("up1.concat_1").inputs == ("down3.maxpool_conv.1.double_conv.5", "up1.up")
    assert g.node("up4.concat_1").inputs == ("inc.double_conv.5", "up4.up")
    assert g.node("up4.up").inputs == ("up3.conv.double_conv.5",)
    side = lambda k: 256 >> k  # noqa: E731  the side after k pools
    double = lambda i, o, s: 9 * i * o * s * s + 9 * o * o * s * s  # noqa: E731
    macs = double(3, 64, side(0)) + sum(double(64 << (k - 1), 64 << k, side(k)) for k in range(1, 5))
    for k, c in enumerate((1024, 512, 256, 128)):      # up1..up4: C_in * H1 * W1 * filters * 2 * 2, then DoubleConv
        macs += c * side(4 - k) ** 2 * (c // 2) * 4 + double(c, c // 2, side(3 - k))
    macs += 64 * 2 * side(0) ** 2
    assert g.macs == macs == 48_171_581_440


@pytest.mark.parametrize("side", [64, 160])
def test_unet_takes_any_side_divisible_by_16(side):
    text = (ROOT / "specs" / "unet.yaml").read_text(encoding="utf-8")
    text = re.sub(r", expect: \[[0-9, ]+\]", "", text).replace("input: [3, 256, 256]", f"input: [3, {side}, {side}]")
    g = cnnspec.loads(text, "unet.yaml").graph
    assert g.output_shape == (2, side, side) and g.params == PARAMS["unet"]


def test_googlenet_and_squeezenet_pools_are_ceil_mode_as_in_torchvision():
    """torchvision's MaxPool2d(3, 2, ceil_mode=True) without padding (GoogLeNet's inception pool aside)."""
    for name, pools in (("googlenet", ("maxpool1", "maxpool2", "maxpool3", "maxpool4")),
                        ("squeezenet1-1", ("features.2", "features.5", "features.8"))):
        g = graph(name)
        for pool in pools:
            assert g.node(pool).op == "maxpool2d" and g.node(pool).attrs["ceil"] is True, (name, pool)
            assert g.node(pool).attrs["padding"] in (0, (0, 0), (0, 0, 0, 0)), (name, pool)
    # at 3x100x100 the ceil pools keep a last, partial window that floor mode drops: 49 -> 24 (floor
    # 24 too), 24 -> 12 (floor 11), 12 -> 6 (floor 5)
    text = (ROOT / "specs" / "squeezenet1-1.yaml").read_text(encoding="utf-8")
    text = re.sub(r", expect: \[[0-9, ]+\]", "", text).replace("input: [3, 224, 224]", "input: [3, 100, 100]")
    g = cnnspec.loads(text, "squeezenet1-1.yaml").graph
    assert [g.node(p).shape[1] for p in ("features.2", "features.5", "features.8")] == [24, 12, 6]


def test_resnet50_is_a_short_file_thanks_to_blocks():
    lines = (ROOT / "specs" / "resnet50.yaml").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 60
    assert len(graph("resnet50").nodes) > 150


def test_readme_table_lists_every_spec_with_its_counts():
    readme = (ROOT / "specs" / "README.md").read_text(encoding="utf-8")
    for path in SPECS:
        g = cnnspec.load(path).graph
        row = next((line for line in readme.splitlines() if f"`{path.name}`" in line), None)
        assert row is not None, f"{path.name} is missing from specs/README.md"
        assert f"{g.params:,}" in row, f"{path.name}: README row should say {g.params:,} params"
