"""Blocks, repeats, ``when`` and ``$param``: expansion and its errors."""
import re
import textwrap

import pytest

import cnnspec
from cnnspec.errors import SpecError

RES = textwrap.dedent("""\
    cnnspec: 1
    name: mini-resnet
    input: [3, 16, 16]
    blocks:
      basic:
        params: {planes: null, stride: 1, downsample: false}
        layers:
          - {conv2d: {filters: $planes, kernel: 3, stride: $stride, padding: 1, bias: false}, name: conv1}
          - {batchnorm: null, name: bn1}
          - {relu: null, name: relu}
          - {conv2d: {filters: $planes, kernel: 3, padding: 1, bias: false}, name: conv2}
          - {batchnorm: null, name: bn2}
          - {conv2d: {filters: $planes, kernel: 1, stride: $stride, bias: false}, name: downsample.0, in: input, when: $downsample}
          - {batchnorm: null, name: downsample.1, when: $downsample}
          - {add: null, in: [bn2, downsample.1], when: $downsample}
          - {add: null, in: [bn2, input], when: not $downsample}
          - relu
    layers:
      - {conv2d: {filters: 8, kernel: 3, padding: 1}, name: stem}
      - {basic: {planes: 8}, name: layer1, repeat: 2}
      - {basic: {planes: 16}, first: {stride: 2, downsample: true}, name: layer2, repeat: {times: 2, start: 0}, expect: [16, 8, 8]}
      - {global_avgpool2d: null, in: layer2}
      - {dense: 10, name: fc}
    """)


def test_resnet_style_blocks_expand_with_torchvision_names():
    g = cnnspec.loads(RES).graph
    names = [n.name for n in g.nodes]
    assert names[:3] == ["stem", "layer1.0.conv1", "layer1.0.bn1"]
    assert "layer1.0.downsample.0" not in names
    assert "layer2.0.downsample.0" in names and "layer2.1.downsample.0" not in names
    assert g.node("layer2.0.downsample.0").inputs == ("layer1.1.relu_1",)
    assert g.node("layer2.0.add_1").inputs == ("layer2.0.bn2", "layer2.0.downsample.1")
    assert g.node("layer2.1.add_1").inputs == ("layer2.1.bn2", "layer2.0.relu_1")
    assert g.node("layer2.0.conv1").attrs["stride"] == (2, 2)
    assert g.node("layer2.1.conv1").attrs["stride"] == (1, 1)
    assert g.node("global_avgpool2d_1").inputs == ("layer2.1.relu_1",)
    assert g.output_shape == (10,)


def test_repeat_on_plain_op_chains_copies():
    g = cnnspec.loads("cnnspec: 1\nname: r\ninput: [1, 4, 4]\nlayers:\n"
                      "  - {conv2d: {filters: 2, kernel: 1}, name: c, repeat: 3}\n").graph
    assert [n.name for n in g.nodes] == ["c.0", "c.1", "c.2"]
    assert g.node("c.2").inputs == ("c.1",)


def test_nested_blocks_prefix_names():
    g = cnnspec.loads(textwrap.dedent("""\
        cnnspec: 1
        name: nested
        input: [1, 4, 4]
        blocks:
          inner:
            layers: [{conv2d: {filters: 2, kernel: 1}, name: c}]
          outer:
            layers: [{inner: null, name: a}, {inner: null, name: b}]
        layers:
          - {outer: null, name: o}
        """)).graph
    assert [n.name for n in g.nodes] == ["o.a.c", "o.b.c"]


@pytest.mark.parametrize("blocks, layers, message", [
    ("  loop:\n    layers: [{loop: null}]\n", "  - loop\n", "block 'loop' calls itself"),
    ("  b:\n    params: {p: 1}\n    layers: [{conv2d: {filters: $q, kernel: 1}}]\n", "  - b\n", "'$q' is not a parameter in this block (its parameters: p)"),
    ("  b:\n    layers: [relu]\n", "  - {relu: null, name: $x}\n", "'$x' is not a parameter here"),
    ("  b:\n    params: {on: true}\n    layers: [{relu: null, when: $off}]\n", "  - b\n", "'when' uses '$off'"),
    ("  b:\n    layers: [{relu: null, when: maybe}]\n", "  - b\n", "'when' must be true, false or an expression"),
    ("  b:\n    params: {keep: false}\n    layers: [{relu: null, when: $keep}]\n", "  - b\n", "block 'b' expands to no layers"),
    ("  b:\n    layers: [relu]\n", "  - {relu: null, first: {a: 1}}\n", "'first' only makes sense with 'repeat'"),
])
def test_block_errors(blocks, layers, message):
    text = f"cnnspec: 1\nname: e\ninput: [1, 4, 4]\nblocks:\n{blocks}layers:\n{layers}"
    with pytest.raises(SpecError) as info:
        cnnspec.loads(text)
    assert message in info.value.render()


def test_typo_in_first_points_inside_first():
    text = RES.replace("first: {stride: 2, downsample: true}", "first: {strid: 2, downsample: true}")
    with pytest.raises(SpecError) as info:
        cnnspec.loads(text)
    assert "'first' sets 'strid', which 'basic' does not take; did you mean 'stride'?" in info.value.render()
    assert ":21:35:" in info.value.render()  # the 'strid' key, inside 'first'
    assert len(info.value.diagnostics) == 1  # no follow-on errors from the layers that read layer2


def _spec(blocks: str, layers: str, input_shape="[4, 8, 8]") -> str:
    """A spec with these blocks and layers (each already indented as it sits in the file)."""
    return f"cnnspec: 1\nname: t\ninput: {input_shape}\nblocks:\n{blocks}layers:\n{layers}"


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        cnnspec.loads(text, "net.yaml")
    return [d.render() for d in info.value.diagnostics]


# ---------------------------------------------------------------- a block with several inputs
MERGE = ("  merge:                       # line 5\n"
         "    params: {filters: null}\n"
         "    inputs: [x, skip]            # line 7\n"
         "    layers:\n"
         "      - {concat: null, in: [x, skip], name: cat}\n"
         "      - {conv2d: {filters: $filters, kernel: 1}, name: proj}\n"
         "      - {add: null, in: [proj, skip]}\n")
TWO = "  - {conv2d: {filters: 4, kernel: 1}, name: enc}\n  - {conv2d: {filters: 4, kernel: 1}, name: mid}\n"


def test_a_block_takes_several_inputs_by_name():
    g = cnnspec.loads(_spec(MERGE, TWO + "  - {merge: {filters: 4}, in: [mid, enc], name: up}\n")).graph
    assert g.node("up.cat").inputs == ("mid", "enc")
    assert g.node("up.add_1").inputs == ("up.proj", "enc")
    assert g.node("up.cat").shape == (8, 8, 8) and g.output_shape == (4, 8, 8)


def test_the_first_layer_of_a_several_input_block_reads_its_first_input():
    blocks = "  b:\n    inputs: [main, side]\n    layers:\n      - relu\n      - {add: null, in: [relu_1, side]}\n"
    g = cnnspec.loads(_spec(blocks, TWO + "  - {b: null, in: [mid, enc], name: c}\n")).graph
    assert g.node("c.relu_1").inputs == ("mid",)
    assert g.node("c.add_1").inputs == ("c.relu_1", "enc")


@pytest.mark.parametrize("layers, expected", [
    # wrong number at the call: at the call's 'in', naming the block's 'inputs' line
    (TWO + "  - {merge: {filters: 4}, in: [mid], name: up}\n",
     "net.yaml:17:31: error: block 'merge' takes 2 inputs (x, skip; declared at line 7), but 'in' names 1"),
    (TWO + "  - {merge: {filters: 4}, in: [mid, enc, mid], name: up}\n",
     "net.yaml:17:31: error: block 'merge' takes 2 inputs (x, skip; declared at line 7), but 'in' names 3"),
    (TWO + "  - {merge: {filters: 4}, name: up}\n",
     "net.yaml:17:5: error: block 'merge' takes 2 inputs (x, skip; declared at line 7), but the call gives 1 "
     "(the layer before it); name them with 'in: [...]'"),
    (TWO + "  - {merge: {filters: 4}, in: [mid, enc], name: up, repeat: 2}\n",
     "net.yaml:17:53: error: block 'merge' takes 2 inputs (x, skip), so a call of it cannot repeat: each copy "
     "would be fed by the last alone; write one call per copy"),
    (TWO + "  - {one: null, in: [mid, enc]}\n",
     "net.yaml:17:21: error: block 'one' takes one input (block at line 12), but 'in' names 2"),
])
def test_wrong_number_of_inputs_at_the_call(layers, expected):
    blocks = MERGE + "  one:\n    layers: [relu]\n"
    assert _errors(_spec(blocks, layers)) == [expected]


@pytest.mark.parametrize("inner, expected", [
    # an input name the block does not declare: at the block's line, naming the call
    ("      - {concat: null, in: [x, skp]}\n",
     "net.yaml:9:32: error: 'in' names 'skp', which is no earlier layer nor an input of block 'merge' (its inputs: "
     "x, skip); did you mean 'skip'? (in block 'merge' called at line 13)"),
    ("      - {concat: null, in: [input, skip]}\n",
     "net.yaml:9:29: error: 'in' names 'input', which is no earlier layer nor an input of block 'merge' (its "
     "inputs: x, skip) (in block 'merge' called at line 13)"),
    ("      - {relu: null, name: skip}\n",
     "net.yaml:9:28: error: layer name 'skip' is an input of block 'merge' (its inputs: x, skip); choose another "
     "name (in block 'merge' called at line 13)"),
])
def test_errors_inside_a_several_input_block(inner, expected):
    blocks = "  merge:\n    params: {}\n    inputs: [x, skip]\n    layers:\n" + inner
    assert _errors(_spec(blocks, TWO + "  - {merge: null, in: [mid, enc], name: up}\n")) == [expected]


@pytest.mark.parametrize("inputs, expected", [
    ("[x, x]", "net.yaml:7:13: error: 'inputs' has repeated items"),
    ("[x, 1y]", "net.yaml:7:17: error: 'inputs' '1y' is not a valid name"),
    ("[]", "net.yaml:7:13: error: 'inputs' must have at least 1 item, got 0"),
])
def test_bad_input_declarations(inputs, expected):
    blocks = f"  merge:\n    params: {{}}\n    inputs: {inputs}\n    layers: [relu]\n"
    assert _errors(_spec(blocks, TWO + "  - {merge: null, name: up}\n"))[0].startswith(expected)


# ---------------------------------------------------------------- an op chosen by a block parameter
ACT = ("  stage:\n"
       "    params: {act: relu}\n"
       "    layers:\n"
       "      - {conv2d: {filters: 4, kernel: 1, activation: $act}, name: conv}\n"
       "      - $act\n"
       "      - {$act: null, name: '2'}\n")


def test_an_activation_chosen_by_a_parameter_serves_two_stages():
    layers = "  - {stage: null, name: a}\n  - {stage: {act: relu6}, name: b}\n  - {stage: {act: sigmoid}, name: c}\n"
    g = cnnspec.loads(_spec(ACT, layers)).graph
    assert [(n.name, n.op) for n in g.nodes if n.name.startswith("b.")] == [
        ("b.conv", "conv2d"), ("b.relu6_1", "relu6"), ("b.2", "relu6")]
    assert g.node("a.conv").attrs["activation"] == "relu" and g.node("c.conv").attrs["activation"] == "sigmoid"
    assert g.node("c.2").op == "sigmoid" and g.node("c.2").inputs == ("c.sigmoid_1",)


def test_an_op_named_by_a_parameter_takes_arguments_and_reserved_keys():
    blocks = "  b:\n    params: {pool: maxpool2d}\n    layers: [{$pool: 2, name: p, expect: [4, 4, 4]}]\n"
    g = cnnspec.loads(_spec(blocks, "  - {b: null, name: m}\n  - {b: {pool: avgpool2d}, name: v, in: input}\n")).graph
    assert [(n.name, n.op, n.attrs["kernel"]) for n in g.nodes] == [("m.p", "maxpool2d", (2, 2)),
                                                                      ("v.p", "avgpool2d", (2, 2))]


@pytest.mark.parametrize("call, expected", [
    ("{stage: {act: sigmoud}, name: s}", [
        "net.yaml:8:54: error: s.conv: 'activation' must be one of 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', "
        "'leaky_relu', got 'sigmoud'; did you mean 'sigmoid'? (in block 'stage' called at line 12)",
        "net.yaml:9:9: error: '$act' stands for an op here, so it must name one, got 'sigmoud'; did you mean "
        "'sigmoid'? (in block 'stage' called at line 12)",
        "net.yaml:10:10: error: '$act' stands for an op here, so it must name one, got 'sigmoud'; did you mean "
        "'sigmoid'? (in block 'stage' called at line 12)"]),
    ("{stage: {act: stage}, name: s}", [
        "net.yaml:8:54: error: s.conv: 'activation' must be one of 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', "
        "'leaky_relu', got 'stage' (in block 'stage' called at line 12)",
        "net.yaml:9:9: error: '$act' stands for an op here, so it must name one, got 'stage' (ops: add, avgpool2d, "
        "batchnorm, concat, conv2d, dense, dropout, flatten, global_avgpool2d, leaky_relu, maxpool2d, relu, relu6, "
        "sigmoid, softmax, tanh) (in block 'stage' called at line 12)",
        "net.yaml:10:10: error: '$act' stands for an op here, so it must name one, got 'stage' (ops: add, "
        "avgpool2d, batchnorm, concat, conv2d, dense, dropout, flatten, global_avgpool2d, leaky_relu, maxpool2d, "
        "relu, relu6, sigmoid, softmax, tanh) (in block 'stage' called at line 12)"]),
])
def test_a_parameter_that_names_no_op(call, expected):
    """Located at the block's lines, naming the call. The lists of ops and activations grow with the op
    table, so they are compared as '...'."""
    def short(message):
        return re.sub(r"must be one of .*?, got", "must be one of ..., got", message.split(" (ops: ")[0])

    got = _errors(_spec(ACT, f"  - {call}\n"))
    assert [short(g) for g in got] == [short(e) for e in expected]
    assert all(g.endswith("(in block 'stage' called at line 12)") for g in got)


def test_a_parameter_op_outside_a_block_is_no_parameter():
    assert _errors(_spec("  b:\n    layers: [relu]\n", "  - $act\n")) == [
        "net.yaml:8:5: error: '$act' is not a parameter here (a spec's own parameters are declared in 'params:')"]


def test_a_parameter_op_that_is_no_parameter_of_its_block():
    blocks = "  b:\n    params: {act: relu}\n    layers: [$atc]\n"
    assert _errors(_spec(blocks, "  - {b: null, name: c}\n")) == [
        "net.yaml:7:14: error: '$atc' is not a parameter in this block; did you mean 'act'? "
        "(in block 'b' called at line 9)"]


# ---------------------------------------------------------------- bare-index local names
NESTED = ("  conv_bn:\n"
          "    params: {filters: 4}\n"
          "    layers:\n"
          "      - {conv2d: {filters: $filters, kernel: 1, bias: false}, name: '0'}\n"
          "      - {batchnorm: null, name: '1'}\n"
          "  mb:\n"
          "    layers:\n"
          "      - {conv_bn: null, name: block.0}\n"
          "      - {conv_bn: {filters: 8}, name: block.1}\n"
          "      - {relu: null, name: '2', in: block.0}\n")


def test_bare_index_names_give_torchvisions_keys():
    from cnnspec.weights.neutral import expected_weights

    g = cnnspec.loads(_spec(NESTED, "  - {mb: null, name: features.1, repeat: 2}\n")).graph
    keys = expected_weights(g)
    assert keys["features.1.0.block.0.0.weight"] == (4, 4, 1, 1)
    assert keys["features.1.1.block.1.1.running_var"] == (8,)
    assert g.node("features.1.0.2").inputs == ("features.1.0.block.0.1",)  # a call's name is its last layer


def test_a_repeat_inside_a_block_may_be_named_by_an_index():
    blocks = "  b:\n    layers: [{conv2d: {filters: 4, kernel: 1}, name: '3', repeat: 2}, {relu: null, in: '3'}]\n"
    g = cnnspec.loads(_spec(blocks, "  - {b: null, name: s}\n")).graph
    assert [n.name for n in g.nodes] == ["s.3.0", "s.3.1", "s.relu_1"]
    assert g.node("s.relu_1").inputs == ("s.3.1",)


@pytest.mark.parametrize("layer, expected", [
    ("  - {relu: null, name: '0'}\n",
     "net.yaml:8:24: error: layer name '0' is not allowed: a name starts with a letter or '_' and holds only ASCII "
     "letters, digits, '_', '.' and '-' (as in 'layer1.0.conv1'); a bare index such as '0' names a layer inside a "
     "block, after its call's name"),
    ("  - {b: null, name: '1.0'}\n",
     "net.yaml:8:21: error: layer name '1.0' is not allowed: a name starts with a letter or '_' and holds only "
     "ASCII letters, digits, '_', '.' and '-' (as in 'layer1.0.conv1'); a bare index such as '0' names a layer inside "
     "a block, after its call's name"),
    ("  - {relu: null, name: 0}\n", "net.yaml:8:24: error: 'name' must be a string, got 0"),
])
def test_a_top_level_name_still_matches_the_contracts_pattern(layer, expected):
    assert _errors(_spec("  b:\n    layers: [relu]\n", layer)) == [expected]


@pytest.mark.parametrize("name, expected", [
    ("0", "net.yaml:6:33: error: 'name' must be a string, got 0; quote an index: name: \"0\" "
          "(in block 'b' called at line 8)"),
    ("'0 1'", "net.yaml:6:33: error: layer name '0 1' is not allowed: a name holds only ASCII letters, digits, "
              "'_', '.' and '-' (as in 'layer1.0.conv1') (in block 'b' called at line 8)"),
])
def test_bad_local_names(name, expected):
    blocks = f"  b:\n    layers: [{{relu: null, name: {name}}}]\n"
    assert _errors(_spec(blocks, "  - {b: null, name: s}\n")) == [expected]


def test_a_call_inside_a_block_may_be_named_by_an_index():
    blocks = NESTED + "  seq:\n    layers: [{conv_bn: null, name: '0'}, {conv_bn: null, name: '1', in: '0'}]\n"
    g = cnnspec.loads(_spec(blocks, "  - {seq: null, name: features.5}\n")).graph
    assert [n.name for n in g.nodes] == ["features.5.0.0", "features.5.0.1", "features.5.1.0", "features.5.1.1"]
    assert g.node("features.5.1.0").inputs == ("features.5.0.1",)


def test_activation_of_a_dense_layer_chosen_by_a_parameter():
    blocks = "  head:\n    params: {act: softmax}\n    layers: [flatten, {dense: {units: 3, activation: $act}, name: fc}]\n"
    g = cnnspec.loads(_spec(blocks, "  - {head: {act: sigmoid}, name: h}\n")).graph
    assert g.node("h.fc").attrs["activation"] == "sigmoid"
