"""Messages users found wanting (issue 19): each now says the cause and the fix."""
from __future__ import annotations

import pytest

import cnnspec
from cnnspec.errors import SpecError
from cnnspec.graph.ops import OPS
from cnnspec.spec.suggestions import ALIASES, suggest


def _errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        cnnspec.loads(text, "net.yaml")
    return [d.render() for d in info.value.diagnostics]


def test_a_yaml_11_boolean_as_a_block_input_name_is_told_to_quote_it():
    text = """cnnspec: 1
name: e
input: [3, 4, 4]
blocks:
  b:
    inputs: [x, y]
    layers: [{add: null, in: [x, y]}]
layers:
  - {conv2d: {filters: 3, kernel: 1}, name: c}
  - {b: null, in: [c, input]}
"""
    got = _errors(text)
    assert got[0] == ("net.yaml:6:17: error: 'y' is a boolean in YAML 1.1 but a string in YAML 1.2; as a name, "
                      "quote it: \"y\"")
    assert all("write true or false" not in line for line in got)
    quoted = text.replace("[x, y]", '[x, "y"]')
    assert cnnspec.loads(quoted).graph.output_shape == (3, 4, 4)


@pytest.mark.parametrize("where", ["name: n", "in: n", "in: [input, n]"])
def test_a_yaml_11_boolean_as_any_name_is_told_to_quote_it(where):
    text = f"cnnspec: 1\nname: e\ninput: [3, 4, 4]\nlayers:\n  - {{relu: null, {where}}}\n"
    assert any("as a name, quote it: \"n\"" in line for line in _errors(text))


def test_a_yaml_11_boolean_as_a_value_is_still_told_true_or_false():
    text = "cnnspec: 1\nname: e\ninput: [3, 4, 4]\nlayers:\n  - {conv2d: {filters: 3, kernel: 1, bias: no}}\n"
    assert "write true or false, or quote it" in _errors(text)[0]


@pytest.mark.parametrize("typed,op,whose", [
    ("conv_transpose2d", "conv2d_transpose", "PyTorch's"),
    ("ConvTranspose2d", "conv2d_transpose", "PyTorch's"),
    ("Conv2DTranspose", "conv2d_transpose", "Keras'"),
    ("BatchNorm2d", "batchnorm", "PyTorch's"),
    ("BatchNormalization", "batchnorm", "Keras' and ONNX's"),
    ("nn.Linear", "dense", "PyTorch's"),
    ("Linear", "dense", "PyTorch's"),
    ("MaxPooling2D", "maxpool2d", "Keras'"),
    ("GlobalAveragePooling2D", "global_avgpool2d", "Keras'"),
    ("Concatenate", "concat", "Keras'"),
    ("UpSampling2D", "upsample2d", "Keras'"),
])
def test_other_frameworks_names_suggest_the_op(typed, op, whose):
    text = f"cnnspec: 1\nname: e\ninput: [3, 4, 4]\nlayers:\n  - {typed}\n"
    assert _errors(text) == [f"net.yaml:5:5: error: unknown op '{typed}'; did you mean '{op}'? "
                             f"('{typed}' is {whose} name for it)"]


@pytest.mark.parametrize("typed,op", [("MaxPool2d", "maxpool2d"), ("Conv2D", "conv2d"), ("Hardswish", "hard_swish"),
                                      ("LeakyReLU", "leaky_relu"), ("ReLU6", "relu6")])
def test_other_spellings_of_an_op_suggest_it(typed, op):
    text = f"cnnspec: 1\nname: e\ninput: [3, 4, 4]\nlayers:\n  - {typed}\n"
    assert _errors(text)[0].startswith(f"net.yaml:5:5: error: unknown op '{typed}'; did you mean '{op}'?")


def test_separable_conv2d_is_suggested_by_name():
    if "separable_conv2d" not in OPS:
        pytest.skip("separable_conv2d comes with issue 19's part B")
    assert suggest("SeparableConv2D", OPS) == ("; did you mean 'separable_conv2d'? ('SeparableConv2D' is Keras' "
                                               "name for it)")


def test_every_alias_names_an_op_or_one_coming():
    assert {op for op, *_ in ALIASES.values()} <= set(OPS) | {"separable_conv2d"}


def test_a_block_layer_naming_an_outer_layer_is_told_how_to_pass_it_in():
    text = """cnnspec: 1
name: e
input: [3, 4, 4]
blocks:
  b:
    layers:
      - {conv2d: {filters: 3, kernel: 1}, name: c}
      - {add: null, in: [c, stem]}
layers:
  - {conv2d: {filters: 3, kernel: 1}, name: stem}
  - {b: null, name: blk}
"""
    assert _errors(text) == [
        "net.yaml:8:29: error: 'in' names 'stem', a layer outside block 'b': a block sees only its inputs (input) and "
        "its own layers; to pass 'stem' in, declare it in the block ('inputs: [input, stem]') and name it in the "
        "call ('in: [..., stem]') (in block 'b' called at line 11)"]


def test_a_nested_block_naming_its_callers_layer_is_told_too():
    text = """cnnspec: 1
name: e
input: [3, 4, 4]
blocks:
  inner:
    layers: [{add: null, in: [input, mid]}]
  outer:
    layers:
      - {conv2d: {filters: 3, kernel: 1}, name: mid}
      - {inner: null, name: i}
layers:
  - {outer: null, name: o}
"""
    got = _errors(text)
    assert len(got) == 1 and "'in' names 'mid', a layer outside block 'inner'" in got[0]


def test_a_name_that_is_nowhere_keeps_the_plain_message():
    text = """cnnspec: 1
name: e
input: [3, 4, 4]
blocks:
  b:
    layers: [{add: null, in: [input, nowhere]}]
layers:
  - {b: null}
"""
    got = _errors(text)
    assert len(got) == 1 and "'in' names 'nowhere', which is no earlier layer" in got[0]
