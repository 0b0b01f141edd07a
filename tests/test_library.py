"""The block library shipped in the package (``import: [cnnspec:NAME]``): each file checks, each block
says what it is, and nets built from it have torchvision's published parameter counts and its
state_dict keys (counted from torchvision's constructors as written in its source; the zoo's
ResNets, MobileNets and EfficientNet-B0, which import the library too, are checked key by key in
test_zoo.py).
"""
import pytest

import cnnspec
from cnnspec.spec.imports import LIBRARY, library_names
from cnnspec.spec.loader import load_document
from cnnspec.spec.schema import validate
from cnnspec.weights.neutral import expected_weights


def test_the_library_holds_the_common_blocks():
    assert library_names() == ["convnext", "densenet", "googlenet", "mobilenet", "resnet", "squeezenet", "unet"]


@pytest.mark.parametrize("name", library_names())
def test_each_library_file_is_valid_and_each_block_says_what_it_is(name):
    doc = load_document(LIBRARY / f"{name}.yaml")
    assert not doc.problems and not validate(doc.data, "library", doc)
    assert doc.data["description"]
    for block, definition in doc.data["blocks"].items():
        assert len(definition.get("description", "")) > 20, f"{name}:{block} says what it is"


def net(library: str, layers: list[str], input_shape="[3, 224, 224]"):
    text = (f"cnnspec: 1\nname: {library}-net\ninput: {input_shape}\nimport: [cnnspec:{library}]\nlayers:\n"
            + "".join(f"  - {line}\n" for line in layers))
    return cnnspec.loads(text, f"{library}-net.yaml").graph


def squeezenet1_1():
    fire = lambda s, e, n: f"{{fire: {{squeeze: {s}, expand1x1: {e}, expand3x3: {e}}}, name: features.{n}}}"  # noqa: E731
    return net("squeezenet", [
        "{conv2d: {filters: 64, kernel: 3, stride: 2, activation: relu}, name: features.0}",
        "{maxpool2d: {kernel: 3, stride: 2}, name: features.2}",  # ceil_mode in torchvision: the same sizes here
        fire(16, 64, 3), fire(16, 64, 4),
        "{maxpool2d: {kernel: 3, stride: 2}, name: features.5}",
        fire(32, 128, 6), fire(32, 128, 7),
        "{maxpool2d: {kernel: 3, stride: 2}, name: features.8}",
        fire(48, 192, 9), fire(48, 192, 10), fire(64, 256, 11), fire(64, 256, 12),
        "{dropout: 0.5, name: classifier.0}",
        "{conv2d: {filters: 1000, kernel: 1, activation: relu}, name: classifier.1}",
        "global_avgpool2d",
    ])


INCEPTIONS = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64), "4a": (192, 96, 208, 16, 48, 64),
              "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
              "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
              "5b": (384, 192, 384, 48, 128, 128)}


def googlenet():
    def inception(n):
        c = INCEPTIONS[n]
        return (f"{{inception: {{ch1x1: {c[0]}, ch3x3red: {c[1]}, ch3x3: {c[2]}, ch5x5red: {c[3]}, ch5x5: {c[4]}, "
                f"pool_proj: {c[5]}}}, name: inception{n}}}")
    pool = "{maxpool2d: {kernel: 3, stride: 2, padding: 1}, name: maxpool%d}"  # torchvision: ceil_mode, same sizes
    return net("googlenet", [
        "{basic_conv: {filters: 64, kernel: 7, stride: 2, padding: 3}, name: conv1}", pool % 1,
        "{basic_conv: {filters: 64, kernel: 1}, name: conv2}",
        "{basic_conv: {filters: 192, kernel: 3, padding: 1}, name: conv3}", pool % 2,
        inception("3a"), inception("3b"), pool % 3,
        *(inception(n) for n in ("4a", "4b", "4c", "4d", "4e")),
        "{maxpool2d: {kernel: 2, stride: 2}, name: maxpool4, expect: [832, 7, 7]}",
        inception("5a"), inception("5b"),
        "{global_avgpool2d: null, name: avgpool}", "{dropout: 0.2, name: dropout}", "{dense: 1000, name: fc}",
    ])


def densenet121():
    layers = ["{conv2d: {filters: 64, kernel: 7, stride: 2, padding: 3, bias: false}, name: features.conv0}",
              "{batchnorm: {}, name: features.norm0}", "{relu: null, name: features.relu0}",
              "{maxpool2d: {kernel: 3, stride: 2, padding: 1}, name: features.pool0}"]
    channels = 64
    for block, count in enumerate((6, 12, 24, 16), start=1):
        layers += [f"{{dense_layer: null, name: features.denseblock{block}.denselayer{i}}}" for i in range(1, count + 1)]
        channels += 32 * count
        if block < 4:
            channels //= 2
            layers.append(f"{{transition: {{filters: {channels}}}, name: features.transition{block}}}")
    layers += ["{batchnorm: {}, name: features.norm5}", "relu", "global_avgpool2d", "{dense: 1000, name: classifier}"]
    return net("densenet", layers)


# torchvision's published figures (its model docs, "num_params" in the weights' meta)
NETS = {"squeezenet1_1": (squeezenet1_1, 1_235_496), "googlenet": (googlenet, 6_624_904),
        "densenet121": (densenet121, 7_978_856)}


@pytest.mark.parametrize("name", sorted(NETS))
def test_nets_built_from_the_library_have_torchvisions_counts(name):
    build, params = NETS[name]
    g = build()
    assert g.params == params
    assert g.output_shape == (1000,)


SPOT_KEYS = [
    ("squeezenet1_1", "features.0.weight", (64, 3, 3, 3)),
    ("squeezenet1_1", "features.3.squeeze.weight", (16, 64, 1, 1)),
    ("squeezenet1_1", "features.12.expand3x3.weight", (256, 64, 3, 3)),
    ("squeezenet1_1", "features.12.expand1x1.bias", (256,)),
    ("squeezenet1_1", "classifier.1.weight", (1000, 512, 1, 1)),
    ("googlenet", "conv1.conv.weight", (64, 3, 7, 7)),
    ("googlenet", "conv1.bn.running_var", (64,)),
    ("googlenet", "inception3a.branch1.conv.weight", (64, 192, 1, 1)),
    ("googlenet", "inception3a.branch2.1.conv.weight", (128, 96, 3, 3)),
    ("googlenet", "inception3a.branch3.1.conv.weight", (32, 16, 3, 3)),  # 3x3, as torchvision has it
    ("googlenet", "inception5b.branch4.1.bn.bias", (128,)),
    ("googlenet", "fc.weight", (1000, 1024)),
    ("densenet121", "features.denseblock1.denselayer1.norm1.weight", (64,)),
    ("densenet121", "features.denseblock1.denselayer6.conv1.weight", (128, 224, 1, 1)),
    ("densenet121", "features.denseblock3.denselayer24.conv2.weight", (32, 128, 3, 3)),
    ("densenet121", "features.transition2.conv.weight", (256, 512, 1, 1)),
    ("densenet121", "features.norm5.running_mean", (1024,)),
    ("densenet121", "classifier.weight", (1000, 1024)),
]


@pytest.mark.parametrize("name, key, shape", SPOT_KEYS, ids=[f"{n}:{k}" for n, k, _ in SPOT_KEYS])
def test_library_blocks_give_torchvisions_keys(name, key, shape):
    assert expected_weights(NETS[name][0]()).get(key) == shape


def test_googlenet_keys_are_torchvisions_modules():
    keys = expected_weights(googlenet())
    prefixes = {"conv1", "conv2", "conv3", "fc"} | {f"inception{n}" for n in INCEPTIONS}
    assert {k.split(".")[0] for k in keys} == prefixes  # no aux heads, no layer outside a module
    assert len([k for k in keys if k.startswith("inception4c.")]) == 6 * 5  # six convs, each weight + 4 bn parts


def test_inverted_residual_without_expansion_shifts_torchvisions_indices():
    g = net("mobilenet", ["{conv_bn_act: {filters: 32, stride: 2}, name: features.0}",
                          "{inverted_residual_t1: {hidden: 32, out: 16, residual: false}, name: features.1}",
                          "{inverted_residual: {hidden: 96, out: 24, stride: 2, residual: false}, name: features.2}",
                          "{inverted_residual: {hidden: 144, out: 24, act: relu}, name: features.3}"], "[3, 32, 32]")
    keys = expected_weights(g)
    assert keys["features.1.conv.0.0.weight"] == (32, 1, 3, 3) and keys["features.1.conv.1.weight"] == (16, 32, 1, 1)
    assert keys["features.2.conv.1.0.weight"] == (96, 1, 3, 3) and keys["features.2.conv.3.weight"] == (24,)
    assert g.node("features.3.conv.0.2").op == "relu" and g.node("features.2.conv.0.2").op == "relu6"
    assert g.node("features.3.add_1").inputs == ("features.3.conv.3", "features.2.conv.3")


def test_v3_inverted_residual_numbers_its_layers_as_torchvision_in_all_four_shapes():
    """torchvision's InvertedResidual appends what it has: expand (where hidden != in), depthwise,
    squeeze-and-excite (where use_se), projection; so the SE and the projection move with both."""
    g = net("mobilenet", [
        "{conv_bn_act: {filters: 16, stride: 2, act: hard_swish, eps: 0.001, momentum: 0.01}, name: features.0}",
        "{inverted_residual_v3: {hidden: 16, out: 16, expand: false}, name: features.1}",                    # -, -
        "{inverted_residual_v3: {hidden: 16, out: 16, stride: 2, se: true, squeeze: 8, expand: false, residual: false},"
        " name: features.2}",                                                                               # -, SE
        "{inverted_residual_v3: {hidden: 72, out: 24, stride: 2, residual: false}, name: features.3}",      # expand, -
        "{inverted_residual_v3: {hidden: 96, out: 24, kernel: 5, padding: 2, act: hard_swish, se: true, squeeze: 24},"
        " name: features.4}",                                                                               # both
    ], "[3, 32, 32]")
    keys = expected_weights(g)
    assert keys["features.1.block.0.0.weight"] == (16, 1, 3, 3) and keys["features.1.block.1.0.weight"] == (16, 16, 1, 1)
    assert keys["features.2.block.1.fc1.weight"] == (8, 16, 1, 1) and keys["features.2.block.2.0.weight"] == (16, 16, 1, 1)
    assert keys["features.3.block.1.0.weight"] == (72, 1, 3, 3) and keys["features.3.block.2.1.running_var"] == (24,)
    assert keys["features.4.block.1.0.weight"] == (96, 1, 5, 5) and keys["features.4.block.2.fc2.bias"] == (96,)
    assert keys["features.4.block.3.0.weight"] == (24, 96, 1, 1)
    assert not any(k.startswith(("features.1.block.2", "features.3.block.3")) for k in keys)
    # one block, two activations: '$act' names the op of the expand and depthwise layers
    assert g.node("features.3.block.0.2").op == "relu" and g.node("features.4.block.0.2").op == "hard_swish"
    assert g.node("features.4.block.2.activation").op == "relu"
    assert g.node("features.4.block.2.scale_activation").op == "hard_sigmoid"
    assert g.node("features.4.block.3.1").attrs["eps"] == 0.001
    # the residual adds the projection to the block's input, where stride 1 and in == out
    assert g.node("features.1.add_1").inputs == ("features.1.block.1.1", "features.0.2")
    assert g.node("features.4.add_1").inputs == ("features.4.block.3.1", "features.3.block.2.1")
    assert not any(n.name.startswith(("features.2.add", "features.3.add")) for n in g.nodes)


def test_squeeze_excite_gates_its_input_with_torchvisions_1x1_convolutions():
    g = net("mobilenet", ["{conv2d: {filters: 12, kernel: 3, padding: 1}, name: stem}",
                          "{squeeze_excite: {channels: 12, squeeze: 4}, name: se}"], "[3, 9, 7]")
    keys = expected_weights(g)
    assert keys == {"stem.weight": (12, 3, 3, 3), "stem.bias": (12,), "se.fc1.weight": (4, 12, 1, 1),
                    "se.fc1.bias": (4,), "se.fc2.weight": (12, 4, 1, 1), "se.fc2.bias": (12,)}
    assert g.node("se.avgpool").shape == (12, 1, 1) and g.node("se.fc2").shape == (12, 1, 1)
    assert g.node("se.activation").op == "relu" and g.node("se.scale_activation").op == "sigmoid"  # its defaults
    assert g.nodes[-1].name == "se.multiply_1" and g.nodes[-1].inputs == ("stem", "se.flatten_1")
    assert g.output_shape == (12, 9, 7)


def test_mbconv_is_efficientnets_block():
    """MBConv: SiLU throughout, squeeze-and-excite always (SiLU, sigmoid), batchnorm's defaults."""
    g = net("mobilenet", ["{conv_bn_act: {filters: 32, stride: 2, act: silu}, name: features.0}",
                          "{mbconv: {hidden: 32, out: 16, squeeze: 8, expand: false, residual: false}, name: features.1.0}",
                          "{mbconv: {hidden: 96, out: 24, squeeze: 4, stride: 2, residual: false}, name: features.2.0}",
                          "{mbconv: {hidden: 144, out: 24, squeeze: 6, kernel: 5, padding: 2}, name: features.2.1}"],
            "[3, 32, 32]")
    keys = expected_weights(g)
    assert keys["features.1.0.block.1.fc1.weight"] == (8, 32, 1, 1) and keys["features.1.0.block.2.0.weight"] == (16, 32, 1, 1)
    assert keys["features.2.0.block.2.fc2.weight"] == (96, 4, 1, 1) and keys["features.2.0.block.3.1.bias"] == (24,)
    assert keys["features.2.1.block.1.0.weight"] == (144, 1, 5, 5)
    assert {g.node(n).op for n in ("features.2.1.block.0.2", "features.2.1.block.1.2", "features.2.1.block.2.activation")} \
        == {"silu"}
    assert g.node("features.2.1.block.2.scale_activation").op == "sigmoid"
    assert g.node("features.2.1.block.3.1").attrs["eps"] == 1e-5
    assert g.node("features.2.1.add_1").inputs == ("features.2.1.block.3.1", "features.2.0.block.3.1")
    assert g.output_shape == (24, 8, 8)


def test_cnblock_counts_and_keys():
    """torchvision's CNBlock(dim): 7x7 depthwise with bias, LayerNorm, Linear(dim, 4 dim), GELU,
    Linear(4 dim, dim), layer scale: 8 dim^2 + 58 dim parameters; the Linears as 1x1 convolutions."""
    g = net("convnext", ["{conv2d: {filters: 96, kernel: 4, stride: 4}, name: stem}",
                         "{cnblock: {dim: 96, hidden: 384}, name: features.1, repeat: 2}",
                         "{cn_downsample: {filters: 192}, name: features.2}"], "[3, 32, 32]")
    keys = expected_weights(g)
    assert sum(_numel(shape) for k, shape in keys.items() if k.startswith("features.1.0.")) == 8 * 96 ** 2 + 58 * 96
    assert keys["features.1.1.block.0.weight"] == (96, 1, 7, 7) and keys["features.1.1.block.0.bias"] == (96,)
    assert keys["features.1.0.block.3.weight"] == (384, 96, 1, 1)
    assert keys["features.1.0.block.5.weight"] == (96, 384, 1, 1)
    assert keys["features.1.0.layer_scale.weight"] == (96,)
    assert keys["features.2.0.weight"] == (96,) and keys["features.2.1.weight"] == (192, 96, 2, 2)
    assert g.node("features.1.0.block.2").op == "layernorm" and g.node("features.1.0.block.2").attrs["eps"] == 1e-6
    assert g.node("features.1.0.layer_scale").attrs["init"] == 1e-6
    assert g.node("features.1.1.add_1").inputs == ("features.1.1.layer_scale", "features.1.0.add_1")
    assert g.output_shape == (192, 4, 4)


def test_unet_blocks_join_the_skip_first_and_keep_the_size():
    """A two-level U-Net from the library: Up's ConvTranspose2d halves the channels and doubles the
    size, the skip comes first in the concatenation, DoubleConv keeps the size."""
    g = net("unet", ["{double_conv: {filters: 8}, name: inc}",
                     "{unet_down: {filters: 16}, name: down1}",
                     "{unet_down: {filters: 32}, name: down2}",
                     "{unet_up: {half: 16, filters: 16}, in: [down2, down1], name: up1}",
                     "{unet_up: {half: 8, filters: 8}, in: [up1, inc], name: up2}",
                     "{conv2d: {filters: 3, kernel: 1}, name: outc.conv}"], "[1, 24, 24]")
    assert g.output_shape == (3, 24, 24)
    assert g.node("down2.maxpool_conv.1.double_conv.5").shape == (32, 6, 6) and g.node("up1.up").shape == (16, 12, 12)
    assert g.node("up1.concat_1").inputs == ("down1.maxpool_conv.1.double_conv.5", "up1.up")
    assert g.node("up1.concat_1").shape == (32, 12, 12)
    keys = expected_weights(g)
    assert keys["inc.double_conv.0.weight"] == (8, 1, 3, 3) and "inc.double_conv.0.bias" not in keys
    assert keys["down1.maxpool_conv.1.double_conv.4.running_mean"] == (16,)
    assert keys["up1.up.weight"] == (32, 16, 2, 2) and keys["up1.up.bias"] == (16,)
    assert keys["up2.conv.double_conv.0.weight"] == (8, 16, 3, 3)
    double = lambda i, o: 9 * i * o + 2 * o + 9 * o * o + 2 * o  # noqa: E731
    assert g.params == (double(1, 8) + double(8, 16) + double(16, 32) + (32 * 16 * 4 + 16) + double(32, 16)
                        + (16 * 8 * 4 + 8) + double(16, 8) + (8 * 3 + 3))


def test_unet_up_takes_two_inputs():
    with pytest.raises(cnnspec.SpecError, match=r"block 'unet_up' takes 2 inputs \(x, skip"):
        net("unet", ["{double_conv: {filters: 8}, name: inc}", "{unet_down: {filters: 16}, name: down1}",
                     "{unet_up: {half: 8, filters: 8}, in: [down1], name: up1}"], "[1, 16, 16]")


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n
