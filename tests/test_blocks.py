"""Blocks, repeats, ``when`` and ``$param``: expansion and its errors."""
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
    ("  b:\n    layers: [{relu: null, when: maybe}]\n", "  - b\n", "'when' must be '$param' or 'not $param'"),
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
