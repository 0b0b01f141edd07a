"""Every kind of spec mistake gives a located, actionable message: table-driven."""
import textwrap

import pytest

from cnnspec.api import check_path

HEAD = "cnnspec: 1\nname: t\ninput: [1, 28, 28]\nlayers:\n"

CASES = [
    # (id, spec body after HEAD (or full text when it starts with 'cnnspec'), expected first error "L:C: message")
    ("kernel-too-big", """\
cnnspec: 1
name: kernel-too-big
input: [1, 4, 4]
layers:
  - conv2d: {filters: 8, kernel: 3}
  - maxpool2d: 2
  - conv2d: {filters: 8, kernel: 3}
""", "7:5: conv2d_2: kernel 3 does not fit its 1x1 input: (1 - 3 + 2*0)/1 + 1 = -1"),
    ("expect-wrong", "  - conv2d: {filters: 64, kernel: 3}\n  - maxpool2d: 3\n    name: pool2\n    expect: [64, 5, 5]\n",
     "6:5: pool2: output is [64, 8, 8], but expect says [64, 5, 5]"),
    ("unknown-op", "  - conv2: {filters: 3, kernel: 3}\n", "5:5: unknown op 'conv2'; did you mean 'conv2d'?"),
    ("unknown-bare-op", "  - flaten\n", "5:5: unknown op 'flaten'; did you mean 'flatten'?"),
    ("dense-on-map", "  - conv2d: {filters: 8, kernel: 3}\n  - dense: 10\n",
     "6:5: dense_1: needs a 1-D input but gets [8, 26, 26]; add 'flatten' before it"),
    ("missing-kernel", "  - conv2d: 32\n", "5:13: conv2d_1 needs 'kernel'"),
    ("bad-arg-name", "  - conv2d: {filters: 3, kernal: 3}\n", "5:26: conv2d_1 has no argument 'kernal'; did you mean 'kernel'?"),
    ("negative-filters", "  - conv2d: {filters: -3, kernel: 3}\n", "5:23: conv2d_1: 'filters' must be at least 1, got -3"),
    ("float-as-int", "  - conv2d: {filters: 64.0, kernel: 3}\n", "5:23: conv2d_1: 'filters' must be an integer, got 64.0"),
    ("bad-padding", "  - conv2d: {filters: 3, kernel: 3, padding: full}\n",
     "5:46: conv2d_1: 'padding' must be zero or more, a pair [height, width], four numbers [top, bottom, left, right], "
     "'same' or 'valid', got 'full'"),
    ("relu-args", "  - relu: 3\n", "5:11: relu_1: relu takes no arguments; write '- relu'"),
    ("two-ops", "  - conv2d: {filters: 3, kernel: 3}\n    relu: {}\n", "6:5: layer has several ops ('conv2d', 'relu'); put each op in its own list item"),
    ("add-shapes", "  - conv2d: {filters: 4, kernel: 3, name: x}\n".replace(", name: x", "") +
     "  - {conv2d: {filters: 4, kernel: 1}, in: input, name: b}\n  - {add: null, in: [conv2d_1, b]}\n",
     "7:5: add_1: inputs must have equal shapes but get [4, 26, 26], [4, 28, 28]"),
    ("in-later", "  - {relu: null, in: later}\n  - {relu: null, name: later}\n",
     "5:22: 'in' names 'later', which comes later; only earlier layers may be named"),
    ("in-unknown", "  - {relu: null, name: a}\n  - {relu: null, in: aa}\n", "6:22: 'in' names 'aa', which is no earlier layer; did you mean 'a'?"),
    ("dup-name", "  - {relu: null, name: a}\n  - {relu: null, name: a}\n", "6:24: layer name 'a' is used twice (first at line 5)"),
    ("version", "cnnspec: 2\nname: t\ninput: [1, 2, 2]\nlayers: [relu]\n",
     "1:10: unsupported language version cnnspec: 2; this cnnspec reads version 1"),
    ("missing-name", "cnnspec: 1\ninput: [1, 2, 2]\nlayers: [relu]\n", "1:1: the spec needs 'name'"),
    ("input-2d", "cnnspec: 1\nname: t\ninput: [28, 28]\nlayers: [relu]\n",
     "3:8: 'input' must be [channels, height, width], got [28, 28]"),
    ("top-unknown-key", "cnnspec: 1\nname: t\ninput: [1, 2, 2]\nlayer: [relu]\n", "4:1: unknown key 'layer'; did you mean 'layers'?"),
    ("empty-layers", "cnnspec: 1\nname: t\ninput: [1, 2, 2]\nlayers: []\n", "4:9: 'layers' must hold at least one layer"),
    ("groups", "  - conv2d: {filters: 6, kernel: 1, groups: 4}\n", "5:5: conv2d_1: groups=4 must divide the 1 input channels"),
    ("pool-pad", "  - maxpool2d: {kernel: 2, padding: 2}\n",
     "5:5: maxpool2d_1: padding 2 is more than half the kernel 2 (height); a window would see only padding"),
    ("classes-mismatch", "cnnspec: 1\nname: t\ninput: [1, 2, 2]\nclasses: [a, b]\nlayers: [flatten, {dense: 3}]\n",
     "4:1: 'classes' has 2 labels but the output is [3]"),
    ("yaml11-bool", "  - {conv2d: {filters: 3, kernel: 3, bias: no}}\n", "5:44: 'no' is a boolean in YAML 1.1 but a string in YAML 1.2; write true or false, or quote it"),
    ("dropout-rate", "  - dropout: 1.5\n", "5:14: dropout_1: 'rate' must be less than 1, got 1.5"),
    ("name-digit-first", "  - {relu: null, name: 1abc}\n",
     "5:24: layer name '1abc' is not allowed: a name starts with a letter or '_' and holds only ASCII letters, "
     "digits, '_' and '.' (as in 'layer1.0.conv1')"),
    ("name-space", "  - {relu: null, name: 'a b'}\n", "5:24: layer name 'a b' is not allowed: a name starts with a letter or '_' and holds only ASCII letters, "
     "digits, '_' and '.' (as in 'layer1.0.conv1')"),
    ("name-non-ascii", "  - {relu: null, name: \u5377\u79ef}\n", "5:24: layer name '\u5377\u79ef' is not allowed: a name starts with a letter or '_' and holds only ASCII letters, "
     "digits, '_' and '.' (as in 'layer1.0.conv1')"),
    ("name-empty", "  - {relu: null, name: ''}\n", "5:24: layer name '' is not allowed: a name starts with a letter or '_' and holds only ASCII letters, "
     "digits, '_' and '.' (as in 'layer1.0.conv1')"),
    ("in-not-a-name", "  - {relu: null, in: 5}\n", "5:22: 'in' must name layers, got 5"),
    ("repeat-zero", "  - {relu: null, repeat: 0}\n", "5:26: 'repeat' must be between 1 and 20000, got 0"),
    ("repeat-huge", "  - {relu: null, repeat: 100000000}\n", "5:26: 'repeat' must be between 1 and 20000, got 100000000"),
    ("repeat-bool", "  - {relu: null, repeat: true}\n",
     "5:26: 'repeat' must be a count or {times: N, start: K} with whole numbers, got true"),
    ("repeat-negative-start", "  - {relu: null, repeat: {times: 2, start: -1}}\n",
     "5:26: 'repeat' numbers copies from 'start', which must be 0 or more, got -1"),
    ("repeat-typo", "  - {relu: null, repeat: {times: 2, strat: 1}}\n",
     "5:37: 'repeat' takes 'times' and 'start', not 'strat'; did you mean 'start'?"),
    ("repeat-no-times", "  - {relu: null, repeat: {start: 2}}\n", "5:26: 'repeat' needs 'times' (how many copies) beside 'start'"),
    ("too-many-layers", "  - {relu: null, repeat: 20000}\n  - {relu: null, repeat: 20000}\n",
     "6:26: the spec expands to more than 20000 layers"),
    ("pool-three-sided-padding", "  - maxpool2d: {kernel: 2, padding: [1, 0, 1]}\n",
     "5:37: maxpool2d_1: 'padding' must be zero or more, a pair [height, width], four numbers [top, bottom, left, "
     "right], 'same' or 'valid', got [1, 0, 1]"),
    ("pool-stride-not-its-doc", "  - avgpool2d: {kernel: 2, stride: [1, 2, 3]}\n",
     "5:36: avgpool2d_1: 'stride' must be a positive integer or a pair [height, width], got [1, 2, 3]"),
    ("name-too-long", "cnnspec: 1\nname: " + "x" * 201 + "\ninput: [1, 2, 2]\nlayers: [relu]\n",
     "2:7: 'name' must be at most 200 characters, got 201"),
    ("flatten-then-conv", "  - flatten\n  - conv2d: {filters: 3, kernel: 1}\n",
     "6:5: conv2d_1: needs a [C, H, W] input but gets [784]; a 1-D vector has no height and width (was there a 'flatten' too early?)"),
]


@pytest.mark.parametrize("case_id, body, expected", CASES, ids=[c[0] for c in CASES])
def test_first_error_is_located_and_explains(tmp_path, case_id, body, expected):
    text = body if body.startswith("cnnspec") else HEAD + body
    path = tmp_path / f"{case_id}.yaml"
    path.write_text(text)
    graph, diagnostics = check_path(path)
    assert diagnostics, "expected an error"
    first = diagnostics[0].render()
    assert first == f"{path}:{expected.split(':', 2)[0]}:{expected.split(':', 2)[1]}: error:{expected.split(':', 2)[2]}"


def test_every_error_is_reported_not_only_the_first(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(HEAD + "  - conv2d: {filters: 0, kernel: 3}\n  - convolution: 3\n  - dense: {units: 3, bias: maybe}\n")
    _, diagnostics = check_path(path)
    assert len(diagnostics) == 3
    lines = [d.location.line for d in diagnostics]
    assert lines == sorted(lines)


def test_hand_sizing_bug_is_reported_where_belief_first_goes_wrong(tmp_path):
    """A dense layer sized for 64x5x5 behind a 64x8x8 map: one error, at the pooling layer."""
    path = tmp_path / "hand.yaml"
    path.write_text(textwrap.dedent("""\
        cnnspec: 1
        name: hand-sized
        input: [3, 32, 32]
        layers:
          - {conv2d: {filters: 32, kernel: 3, padding: 1}, expect: [32, 32, 32]}
          - {maxpool2d: 2, expect: [32, 16, 16]}
          - {conv2d: {filters: 64, kernel: 3, padding: 1}, expect: [64, 16, 16]}
          - {maxpool2d: 2, name: pool2, expect: [64, 5, 5]}
          - {flatten: null, expect: [1600]}
          - {dense: 10, expect: [10]}
        """))
    _, diagnostics = check_path(path)
    assert [d.render().split(": error: ")[1] for d in diagnostics] == [
        "pool2: output is [64, 8, 8], but expect says [64, 5, 5]"]
    assert diagnostics[0].location.line == 8


def test_error_inside_block_names_layer_block_line_and_call_line(tmp_path):
    path = tmp_path / "block.yaml"
    path.write_text(textwrap.dedent("""\
        cnnspec: 1
        name: blocky
        input: [3, 8, 8]
        blocks:
          squeeze:
            params: {k: 3}
            layers:
              - {conv2d: {filters: 4, kernel: $k}, name: conv}
              - relu
        layers:
          - {squeeze: {k: 3}, name: s1}
          - {squeeze: {k: 9}, name: s2}
        """))
    _, diagnostics = check_path(path)
    assert len(diagnostics) == 1
    text = diagnostics[0].render()
    assert text == f"{path}:8:9: error: s2.conv: kernel 9 does not fit its 6x6 input: (6 - 9 + 2*0)/1 + 1 = -2 " \
                   f"(in block 'squeeze' called at line 12)"


def test_unknown_block_parameter_and_missing_required(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(textwrap.dedent("""\
        cnnspec: 1
        name: p
        input: [3, 8, 8]
        blocks:
          b:
            params: {width: null}
            layers: [{conv2d: {filters: $width, kernel: 1}}]
        layers:
          - {b: {widht: 3}}
          - {b: {}}
        """))
    _, diagnostics = check_path(path)
    messages = [d.message for d in diagnostics]
    assert "block 'b' has no parameter 'widht'; did you mean 'width'?" in messages
    assert "block 'b' needs parameter 'width'" in messages


# ---------------------------------------------------------------- "did you mean": near spellings only

from cnnspec.graph.ops import OPS  # noqa: E402
from cnnspec.spec.suggestions import close_match  # noqa: E402

ARG_NAMES = ["filters", "kernel", "stride", "padding", "dilation", "groups", "bias", "activation"]
NEAR = [  # (typed, known names, suggestion): real typos keep their suggestion
    ("rleu", OPS, "relu"), ("conv2", OPS, "conv2d"), ("maxpool", OPS, "maxpool2d"), ("flaten", OPS, "flatten"),
    ("tahn", OPS, "tanh"), ("ReLU", OPS, "relu"), ("leakyrelu", OPS, "leaky_relu"),
    ("kernal", ARG_NAMES, "kernel"), ("filter", ARG_NAMES, "filters"), ("strides", ARG_NAMES, "stride"),
    ("strat", ["times", "start"], "start"), ("aa", ["a", "input"], "a"),
]
FAR = [  # (typed, known names): another real name, or a different word, gets no suggestion
    ("gelu", ["relu"]), ("elu", ["relu"]), ("selu", OPS), ("prelu", OPS), ("swish", ["sigmoid"]),
    ("hard_sigmoid", ["sigmoid", "hard_swish"]), ("global_maxpool2d", ["global_avgpool2d"]),
    ("cropping2d", OPS), ("conv1d", OPS), ("conv3d", OPS), ("convolution2d", OPS),
    ("frobnicate", OPS), ("conv2d_9", ["conv2d_1"]), ("layer2", ["layer1"]), ("tanh", ["tank"]),
]


@pytest.mark.parametrize("word, known, expected", NEAR, ids=[c[0] for c in NEAR])
def test_a_near_spelling_is_suggested(word, known, expected):
    assert close_match(word, known) == expected


@pytest.mark.parametrize("word, known", FAR, ids=[c[0] for c in FAR])
def test_a_different_name_is_not_suggested(word, known):
    assert close_match(word, known) is None


@pytest.mark.parametrize("layer", ["selu", "prelu", "hardtanh", "cropping2d: 2"])
def test_unknown_op_without_a_near_spelling_lists_the_ops_instead(tmp_path, layer):
    path = tmp_path / "far.yaml"
    path.write_text(HEAD + f"  - {layer}\n")
    _, diagnostics = check_path(path)
    message = diagnostics[0].message
    assert "did you mean" not in message and message.startswith(f"unknown op '{layer.split(':')[0]}' (ops: ")


# ---------------------------------------------------------------- an unknown activation (was: internal error)

import json  # noqa: E402

from cnnspec.cli import main  # noqa: E402


@pytest.mark.parametrize("value, hint", [("rleu", "; did you mean 'relu'?"), ("banana", "")])
@pytest.mark.parametrize("op, line", [("conv2d: {filters: 3, kernel: 3, activation: %s}", 5),
                                      ("dense: {units: 3, activation: %s}", 6)])
def test_unknown_activation_is_a_located_error_in_text_and_json(tmp_path, capsys, value, hint, op, line):
    path = tmp_path / "act.yaml"
    layers = ("" if line == 5 else "  - flatten\n") + f"  - {op % value}\n    name: layer\n"
    path.write_text(HEAD + layers)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "internal error" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:{line}:") and ": error: layer: 'activation' must be one of 'relu', " in first
    assert first.endswith(f", got '{value}'{hint}") and "null" not in first
    assert main(["check", "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["errors"][0]["line"] == line
    assert doc["errors"][0]["message"] == first.split(": error: ", 1)[1]


# ---------------------------------------------------------------- messages say what is allowed, never a description

from cnnspec.spec.messages import MESSAGES, allowed_words, join_or  # noqa: E402
from cnnspec.spec.schema import schema_for  # noqa: E402


def test_allowed_comes_from_allowed_text_or_branches_never_description():
    branches = [{"type": "integer", "minimum": 0}, {"type": "array", "items": {"type": "integer"},
                                                    "minItems": 2, "maxItems": 2}, {"enum": ["same", None]}]
    assert join_or(allowed_words({"anyOf": branches, "description": "how it pads"})) == \
        "zero or more, a pair [height, width] or 'same'"
    assert allowed_words({"anyOf": branches, "allowed": "a padding", "description": "how it pads"}) == ["a padding"]


def _keywords(schema, found):
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            _keywords(list(value.values()) if key in ("properties", "$defs") else value, found)
    elif isinstance(schema, list):
        for value in schema:
            _keywords(value, found)
    return found


STRUCTURAL = {"properties", "items", "$ref", "$defs", "$id", "$schema", "title", "description", "default", "allowed"}


def test_every_keyword_the_checker_validates_has_its_own_message():
    used = set()
    for kind in ["document"] + [f"op:{name}" for name in OPS]:
        _keywords(schema_for(kind), used)
    assert used - STRUCTURAL - set(MESSAGES) == set()


# ---------------------------------------------------------------- a failed layer: no invented follow-on errors

FOLLOW_ON = [
    # (id, spec body after HEAD, every message expected: the layers that read the failed one stay quiet)
    ("in-names-unknown-op", "  - {frobnicate: 3, name: f}\n  - {relu: null, in: f}\n  - dense: 3\n",
     ["unknown op 'frobnicate'"]),
    ("default-input-after-unknown-op", "  - flatten\n  - unflatten: [1, 28, 28]\n  - conv2d: {filters: 3, kernel: 3}\n",
     ["unknown op 'unflatten'"]),
    ("in-names-unknown-op-by-default-name", "  - frobnicate\n  - {relu: null, in: frobnicate_1}\n  - dense: 3\n",
     ["unknown op 'frobnicate'"]),
    ("after-a-bad-in", "  - flatten\n  - {relu: null, in: nope}\n  - conv2d: {filters: 3, kernel: 3}\n",
     ["'in' names 'nope', which is no earlier layer"]),
    ("after-a-bad-argument", "  - conv2d: {filters: 0, kernel: 3}\n  - dense: 3\n",
     ["conv2d_1: 'filters' must be at least 1, got 0"]),
    ("add-of-a-failed-layer", "  - {frobnicate: 3, name: f}\n  - {relu: null, name: r, in: input}\n  - {add: null, in: [f, r]}\n",
     ["unknown op 'frobnicate'"]),
    ("own-argument-errors-still-reported", "  - frobnicate\n  - conv2d: {filters: 0, kernel: 3}\n",
     ["unknown op 'frobnicate'", "conv2d_1: 'filters' must be at least 1, got 0"]),
    ("a-failed-layer-still-counts-for-names", "  - {conv2d: {filters: 3, kernel: 3}, in: nope}\n"
     "  - {conv2d: {filters: 3, kernel: 99}, in: input}\n",
     ["'in' names 'nope', which is no earlier layer", "conv2d_2: kernel 99 does not fit its 28x28 input"]),
    ("block-call-fails", "  - {b: null, name: call}\n  - {relu: null, in: call}\n  - dense: 3\n",
     ["unknown op 'rleu'; did you mean 'relu'?"]),
]
BLOCK_B = "blocks:\n  b:\n    layers: [rleu]\n"


@pytest.mark.parametrize("case_id, body, expected", FOLLOW_ON, ids=[c[0] for c in FOLLOW_ON])
def test_layers_reading_a_failed_layer_get_no_invented_errors(tmp_path, case_id, body, expected):
    path = tmp_path / f"{case_id}.yaml"
    path.write_text(HEAD.replace("layers:\n", BLOCK_B + "layers:\n") + body)
    _, diagnostics = check_path(path)
    messages = [d.message for d in diagnostics]
    assert len(messages) == len(expected), messages
    for message, start in zip(messages, expected):
        assert message.startswith(start), messages


def test_expect_on_a_call_whose_last_layer_failed_is_not_moved_to_an_earlier_layer(tmp_path):
    path = tmp_path / "expect.yaml"
    path.write_text(HEAD.replace("layers:\n", "blocks:\n  b:\n    layers: [flatten, rleu]\n" + "layers:\n")
                    + "  - {b: null, expect: [10]}\n")
    _, diagnostics = check_path(path)
    assert [d.message for d in diagnostics] == ["unknown op 'rleu'; did you mean 'relu'?"]


# ---------------------------------------------------------------- an error in a block: said once, with its calls

from pathlib import Path  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _resnet50_with_its_block_written_in() -> str:
    """specs/resnet50.yaml with the library's bottleneck (which it imports) written into the file."""
    text = (SPECS / "resnet50.yaml").read_text()
    library = (SPECS.parent / "cnnspec" / "blocks" / "resnet.yaml").read_text()
    block = "".join(line for line in library[library.index("  bottleneck:"):].splitlines(True)
                    if not line.startswith("    description:"))
    start = text.index("import:")
    return text[:start] + "blocks:\n" + block + text[text.index("\n", start) + 1:]


def test_typos_in_a_resnet50_block_are_said_once_each(tmp_path):
    text = _resnet50_with_its_block_written_in()
    text = text.replace("      - relu\n", "      - rleu\n", 1).replace("{batchnorm: {}, name: bn3}", "{batchnrm: {}, name: bn3}")
    path = tmp_path / "r50.yaml"
    path.write_text(text)
    _, diagnostics = check_path(path)
    assert [d.render().split(": error: ")[1] for d in diagnostics] == [
        "unknown op 'rleu'; did you mean 'relu'? (in block 'bottleneck', reached by 16 calls, first at line 35)",
        "unknown op 'batchnrm'; did you mean 'batchnorm'? (in block 'bottleneck', reached by 16 calls, "
        "first at line 35)"]
    assert [d.location.line for d in diagnostics] == [17, 22]  # the block's lines


BLOCKY = """\
cnnspec: 1
name: blocky
input: [3, 8, 8]
blocks:
  inner:
    params: {k: 1}
    layers:
      - {conv2d: {filters: 4, kernel: $k, %s}, name: conv}
  outer:
    params: {k: 1}
    layers:
      - {inner: {k: $k}, name: a}
layers:
%s"""
BLOCK_CASES = [
    # (id, extra conv2d argument, calls, every error expected)
    ("argument-typo-three-calls", "kernal: 3", "  - {inner: null, name: s, repeat: 3}\n",
     ["8:43: s.0.conv has no argument 'kernal'; did you mean 'kernel'? (in block 'inner', reached by 3 calls, "
      "first at line 14)"]),
    ("one-call-keeps-its-wording", "kernal: 3", "  - {inner: null, name: s}\n",
     ["8:43: s.conv has no argument 'kernal'; did you mean 'kernel'? (in block 'inner' called at line 14)"]),
    ("same-shape-error-two-calls", "stride: 1", "  - {inner: {k: 9}, name: s1}\n  - {inner: {k: 9}, name: s2, in: input}\n",
     ["8:9: s1.conv: kernel 9 does not fit its 8x8 input: (8 - 9 + 2*0)/1 + 1 = 0 (in block 'inner', "
      "reached by 2 calls, first at line 14)"]),
    ("shape-error-per-call-argument", "stride: 1", "  - {inner: {k: 9}, name: s1}\n  - {inner: {k: 10}, name: s2, in: input}\n",
     ["8:9: s1.conv: kernel 9 does not fit its 8x8 input: (8 - 9 + 2*0)/1 + 1 = 0 (in block 'inner' called at line 14)",
      "8:9: s2.conv: kernel 10 does not fit its 8x8 input: (8 - 10 + 2*0)/1 + 1 = -1 (in block 'inner' called at "
      "line 15)"]),
    ("argument-value-per-call", "stride: 1", "  - {inner: {k: 0}, name: s1}\n  - {inner: {k: -1}, name: s2, in: input}\n",
     ["8:39: s1.conv: 'kernel' must be a positive integer or a pair [height, width], got 0 (in block 'inner' called "
      "at line 14)",
      "8:39: s2.conv: 'kernel' must be a positive integer or a pair [height, width], got -1 (in block 'inner' called "
      "at line 15)"]),
    ("nested-calls", "kernal: 3", "  - {outer: null, name: o1}\n  - {outer: null, name: o2}\n",
     ["8:43: o1.a.conv has no argument 'kernal'; did you mean 'kernel'? (in block 'inner', reached by 2 calls, "
      "first at line 12)"]),
]


@pytest.mark.parametrize("case_id, extra, calls, expected", BLOCK_CASES, ids=[c[0] for c in BLOCK_CASES])
def test_an_error_in_a_block_is_said_once_unless_it_differs_per_call(tmp_path, case_id, extra, calls, expected):
    path = tmp_path / f"{case_id}.yaml"
    path.write_text(BLOCKY % (extra, calls))
    _, diagnostics = check_path(path)
    assert [d.render().split(f"{path}:", 1)[1].replace(": error:", ":") for d in diagnostics] == expected


# ---------------------------------------------------------------- --json of an invalid spec: no figures as if real

JSON_CASES = [
    # (id, spec body after HEAD, layers whose figures are real: their output shapes)
    ("unknown-op", "  - conv2d: {filters: 4, kernel: 3}\n  - {frobnicate: 3, name: f}\n  - {relu: null, in: f}\n"
     "  - {conv2d: {filters: 2, kernel: 1}, in: input}\n",
     {"conv2d_1": [4, 26, 26], "relu_1": None, "conv2d_2": [2, 28, 28]}),
    ("wrong-expect", "  - conv2d: {filters: 4, kernel: 3}\n  - {maxpool2d: 2, expect: [4, 12, 12]}\n  - flatten\n"
     "  - dense: 10\n",
     {"conv2d_1": [4, 26, 26], "maxpool2d_1": [4, 13, 13], "flatten_1": None, "dense_1": None}),
    ("shape-error", "  - flatten\n  - conv2d: {filters: 3, kernel: 1}\n  - relu\n",
     {"flatten_1": [784], "conv2d_1": None, "relu_1": None}),
    ("classes", "  - flatten\n  - dense: 3\nclasses: [a, b]\n", {"flatten_1": [784], "dense_1": [3]}),
]


@pytest.mark.parametrize("case_id, body, real", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_json_of_an_invalid_spec_has_null_figures_where_they_are_not_real(tmp_path, capsys, case_id, body, real):
    path = tmp_path / f"{case_id}.yaml"
    path.write_text(HEAD + body)
    assert main(["check", "--json", str(path)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False and doc["errors"]
    assert doc["params"] is None and doc["macs"] is None and doc["output_shape"] is None
    assert doc["input_shape"] == [1, 28, 28] and doc["name"] == "t"
    layers = {layer["name"]: layer for layer in doc["layers"]}
    assert {name: layers[name]["output_shape"] for name in real} == real
    for name, shape in real.items():
        figures = (layers[name]["params"], layers[name]["macs"])
        assert (None in figures) == (shape is None), (name, figures)


def test_control_characters_in_names_never_split_an_error_line(tmp_path, capsys):
    """Names are echoed from the spec; a newline in one is shown escaped, so each error stays one line."""
    from cnnspec.cli import main

    spec = tmp_path / "ctl.yaml"
    spec.write_text('cnnspec: 1\nname: t\ninput: [1, 4, 4]\nlayers:\n  - relu\n'
                    '  - {relu: null, in: "a\\nb"}\n  - {"re\\rlu\\u001b": null}\n', encoding="utf-8")
    assert main(["check", str(spec)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3, lines  # two errors and the count
    assert "'a\\nb'" in lines[0] and "'re\\rlu\\x1b'" in lines[1]
