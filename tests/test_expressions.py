"""Expressions over parameters, spec params and scales, --scale/--set (the contract's third edition)."""
from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnspec
from cnnspec.cli import main
from cnnspec.errors import SpecError, UsageError
from cnnspec.spec.expressions import Evaluated, ExpressionError, UnknownParameter, evaluate, make_divisible


def _torchvision_make_divisible(v, divisor, min_value=None):
    """torchvision/models/_utils.py, verbatim: the reference the evaluator's function must equal."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


# -- the evaluator ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,params,value", [
    ("$a + 2 * $b", {"a": 1, "b": 3}, 7),
    ("($a + 2) * $b", {"a": 1, "b": 3}, 9),
    ("$a / 2", {"a": 5}, Evaluated(2.5, "")),
    ("$a / 2", {"a": 4}, 2),                 # an integral float is handed on as an int
    ("$w * 1.5", {"w": 32}, 48),
    ("$a // 2", {"a": -5}, -3),
    ("$a % 3", {"a": -5}, 1),
    ("2 ** $a", {"a": 10}, 1024),
    ("-$a", {"a": 3}, -3),
    ("round(2.5) + round(3.5) + round($x)", {"x": 0.5}, 2 + 4 + 0),   # half to even
    ("round($x, 1)", {"x": 2.25}, Evaluated(2.2, "")),
    ("int(-2.7) + int(2.7)", {}, 0),         # towards zero
    ("floor(-2.5) + ceil(2.1) + abs(-3)", {}, -3 + 3 + 3),
    ("min($a, 4, 9) + max(1, $a)", {"a": 5}, 9),
    ("$s == 1 and $i == $o", {"s": 1, "i": 8, "o": 8}, True),
    ("$s == 1 and $i == $o", {"s": 2, "i": 8, "o": 8}, False),
    ("not $flag or $n > 3", {"flag": True, "n": 2}, False),
    ("1 < $n <= 3", {"n": 3}, True),
    ("$a if $a > $b else $b", {"a": 2, "b": 7}, 7),
    ("$act == $other", {"act": "relu", "other": "relu"}, True),
    ("make_divisible(32 * $w)", {"w": 1.4}, 48),          # pytorch/vision#973: truncation gives 44
    ("make_divisible(v=$c, divisor=8, min_value=16)", {"c": 3}, 16),
    ("make_divisible($c, 8)", {"c": 11}, 16),             # 11 -> 8 is more than 10% down: one more step
    ("make_divisible($c, 4)", {"c": 2}, 4),               # never below the divisor
])
def test_values(text, params, value):
    got = evaluate(text, params)
    assert got == value and type(got) is type(value)


def test_make_divisible_is_torchvisions_rule_on_the_boundaries():
    # MobileNetV2 at width 1.4: 32 * 1.4 = 44.8 rounds to 48, where int(44.8) // 8 * 8 would be 40 and 44.8 -> 44
    assert make_divisible(32 * 1.4, 8) == 48
    assert make_divisible(1280 * 1.4, 8) == 1792
    assert make_divisible(16 * 0.5, 8) == 8 and make_divisible(24 * 0.75, 8) == 24 and make_divisible(96 * 0.75) == 72
    assert make_divisible(12, 8) == 16 and make_divisible(11.99, 8) == 16 and make_divisible(4, 8) == 8
    assert make_divisible(20, 8) == 24  # the tie rounds up (int(20 + 4) = 24)
    assert make_divisible(19.9, 8) == 24 and make_divisible(19, 8) == 16 + 8 * (16 < 0.9 * 19)
    for v in [x / 4 for x in range(1, 2000)]:
        for divisor, min_value in ((8, None), (4, None), (8, 16), (3, 1)):
            assert make_divisible(v, divisor, min_value) == _torchvision_make_divisible(v, divisor, min_value)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.01, max_value=1e6), st.sampled_from([1, 2, 4, 8, 16, 32]))
def test_make_divisible_equals_torchvisions_everywhere(v, divisor):
    got = evaluate("make_divisible($v, $d)", {"v": v, "d": divisor})
    assert got == _torchvision_make_divisible(v, divisor)


@pytest.mark.parametrize("text,words", [
    ("$a / 0", "division by zero"),
    ("$a // 0", "division by zero"),
    ("$a % 0", "division by zero"),
    ("$a +", "not a valid expression"),
    ("$ a", "'$' must be followed"),
    ("a + $a", "'a' is not a parameter; write '$a'"),
    ("$a.real", "an attribute"),
    ("$a[0]", "indexing"),
    ("__import__('os').system('true') or $a", "an attribute ('.') called is not part"),
    ("__import__('os') or $a", "'__import__' is no function"),
    ("$a + 'x'", "is not allowed"),
    ("True or $a", "is not allowed"),
    ("lambda: $a", "a lambda"),
    ("[x for x in $a]", "a comprehension"),
    ("$a | 1", "a bitwise operator"),
    ("$a in 1", "'in'/'is'"),
    ("($a := 3)", "':='"),
    ("$a, 1", "a tuple"),
    ("sqrt($a)", "'sqrt' is no function"),
    ("min()", "min() takes"),
    ("abs($a, 2)", "abs() takes 1 arguments"),
    ("make_divisible($a, divisor=0)", "divisor must be positive"),
    ("make_divisible($a, bad=1)", "takes no argument 'bad'"),
    ("$s + 1", "needs a number, got the string 'relu'"),
    ("$t + 1", "needs a number, got a boolean"),
    ("not $a", "'not' needs true or false"),
    ("$a if $a else 1", "'if' needs true or false"),
    ("$a < $s", "needs a number"),
    ("(-8) ** 0.5 + $a", "not a real number"),
    ("0 ** -1 + $a", "zero to a negative power"),
])
def test_errors(text, words):
    with pytest.raises(ExpressionError) as info:
        evaluate(text, {"a": 3, "s": "relu", "t": True})
    assert words in str(info.value)


def test_an_unknown_parameter_is_named():
    with pytest.raises(UnknownParameter) as info:
        evaluate("$a + $missing", {"a": 1})
    assert info.value.name == "missing"


@pytest.mark.parametrize("text", [
    "9 ** 9 ** 9 ** $a",                       # would never finish
    "10 ** 16 + $a",
    "$a ** 999999999999",
    "99999999 * 99999999 * $a",                # big-integer growth, refused at each step
    "2.0 ** 5000 + $a",
    "1e300 * 1e300 * $a",
    "int(1e300 * $a)",
    "(" * 40 + "$a" + ")" * 40,
    "-" * 400 + "$a",
    "not " * 120 + "$t",
    "$a + " * 200 + "1",
    "$a" * 1000,
    "min(" + "$a, " * 300 + "1)",
    "$a if $t else 1e999",
    "$a if $t else 12345678901234567890",
])
def test_hostile_expressions_end_quickly_with_one_error(text):
    start = time.perf_counter()
    with pytest.raises(ExpressionError):
        evaluate(text, {"a": 3, "t": True})
    assert time.perf_counter() - start < 0.5


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="$ab()+-*/%<>=!.,0123456789e ifnotandorelsmxbcdv_", max_size=60))
def test_any_text_gives_a_value_or_an_expression_error(text):
    try:
        value = evaluate(text, {"a": 3, "b": 2.5})
    except ExpressionError:
        return
    assert isinstance(value, (bool, int, float))
    assert not isinstance(value, float) or math.isfinite(value)


# -- in specs --------------------------------------------------------------------------------------
HEAD = "cnnspec: 1\nname: e\n"


def _check(text, **choice):
    return cnnspec.loads(text, "net.yaml", **choice).graph


def _errors(text, **choice) -> list[str]:
    with pytest.raises(SpecError) as info:
        cnnspec.loads(text, "net.yaml", **choice)
    return [d.render() for d in info.value.diagnostics]


SLOTS = HEAD + """params: {width: 0.5, res: 16, deep: true, n: 2}
input: [3, $res, "$res * 2"]
blocks:
  stage:
    params: {c: null, s: 1, cin: 0, h: 8}
    layers:
      - {conv2d: {filters: "$c * 2", kernel: 3, stride: $s, padding: 1}, name: conv, expect: ["$c * 2", $h, "$h * 2"]}
      - {add: null, in: [conv, input], when: "$s == 1 and $cin == $c * 2"}
layers:
  - {conv2d: {filters: "make_divisible(32 * $width)", kernel: 3, padding: same}, name: stem}
  - {stage: {c: "16 * $width", s: "$n + 0", cin: 16}, name: s1}
  - {stage: {c: 8, cin: "$n * 8"}, name: s2}
  - {stage: {c: 8, cin: 16, h: "$n * 2"}, first: {s: "$n"}, repeat: "$n + 1", name: s3}
  - {conv2d: {filters: 4, kernel: 1}, name: extra, when: "not $deep"}
  - {global_avgpool2d: null, expect: ["$n ** 4"]}
  - dense: "$n * 5"
"""


def test_expressions_in_every_slot():
    g = _check(SLOTS)
    assert g.input_shape == (3, 16, 32)
    assert g.node("stem").shape == (16, 16, 32)             # make_divisible(16) = 16
    assert g.node("s1.conv").attrs["stride"] == (2, 2)      # a call argument
    assert g.node("s1.conv").shape == (16, 8, 16)
    names = [n.name for n in g.nodes]
    assert "s1.add_1" not in names and "s2.add_1" in names  # 'when' over the call's values
    assert [n for n in names if n.startswith("s3.")] == ["s3.0.conv", "s3.1.conv", "s3.1.add_1",
                                                          "s3.2.conv", "s3.2.add_1"]  # repeat $n + 1, first
    assert g.node("s3.0.conv").shape == (16, 4, 8)
    assert "extra" not in names
    assert g.output_shape == (10,)
    assert dict(g.parameters) == {"width": 0.5, "res": 16, "deep": True, "n": 2}


def test_scales_and_sets():
    text = HEAD + """params: {width: 1.0, res: 8}
scales:
  small: {width: 0.5}
  big: {width: 2.0, res: 16}
input: [3, $res, $res]
layers:
  - conv2d: {filters: "make_divisible(16 * $width)", kernel: 1}
"""
    assert _check(text).output_shape == (16, 8, 8)
    assert _check(text, scale="small").output_shape == (8, 8, 8)
    assert _check(text, scale="big").output_shape == (32, 16, 16)
    g = _check(text, scale="big", sets={"res": 4, "width": 1.0})      # --set after the scale
    assert g.output_shape == (16, 4, 4) and g.scale == "big"
    spec = json.loads(g.canonical_spec)                                 # the exported spec: resolved
    assert spec["params"] == {"width": 1.0, "res": 4} and "scales" not in spec
    again = cnnspec.loads(g.canonical_spec, "<metadata>").graph         # re-checks with no option
    assert again.output_shape == g.output_shape
    with pytest.raises(UsageError, match=r"--scale huge: no such scale \(its scales: small, big\)"):
        _check(text, scale="huge")
    with pytest.raises(UsageError, match=r"--set widht: no such parameter \(its params: width, res\); "
                                         r"did you mean 'width'\?"):
        _check(text, sets={"widht": 2})


def test_a_scale_naming_no_parameter_is_located():
    text = HEAD + "params: {width: 1.0}\nscales:\n  s: {widht: 2}\ninput: [3, 4, 4]\nlayers: [relu]\n"
    assert _errors(text) == ["net.yaml:5:7: error: scale 's' sets 'widht', which is no parameter of this spec; "
                             "did you mean 'width'?"]


@pytest.mark.parametrize("layer,message", [
    ('conv2d: {filters: "$w * 1.5", kernel: 1}',
     "conv2d_1: conv2d 'filters' takes a whole number, but '$w * 1.5' is 49.5"),
    ('conv2d: {filters: "$w / 0", kernel: 1}', "expression '$w / 0': division by zero (33 / 0)"),
    ('conv2d: {filters: "$wd * 2", kernel: 1}',
     "expression '$wd * 2': '$wd' is not a parameter here; did you mean 'w'?"),
    ('conv2d: {filters: "$w *", kernel: 1}', "expression '$w *': not a valid expression"),
    ('{relu: null, when: "$w + 1"}', "'when' needs true or false, but '$w + 1' is 34"),
    ('{relu: null, repeat: "$w / 2"}', "'repeat' must be a count or {times: N, start: K} "
                                       "with whole numbers, got 16.5 (from '$w / 2', line 6)"),
    ('{relu: null, expect: ["$w ** 99"]}', "expression '$w ** 99': 33 ** 99 is too large"),
])
def test_errors_are_located_at_the_value_and_quote_it(layer, message):
    text = HEAD + f"params: {{w: 33}}\ninput: [3, 4, 4]\nlayers:\n  - {layer}\n"
    got = _errors(text)
    where = f"net.yaml:6:{layer.index(chr(34)) + 5}: error: "  # the expression's own line and column
    assert len(got) == 1 and got[0].startswith(where + message), got


def test_input_expressions_are_checked():
    text = HEAD + 'params: {r: 10}\ninput: [3, "$r / 4", 4]\nlayers: [relu]\n'
    assert _errors(text) == ["net.yaml:4:12: error: input: a side must be a whole number from 1 to 1000000, "
                             "but '$r / 4' is 2.5"]


def test_a_fraction_through_a_block_call_quotes_the_expression_where_it_is_written():
    text = HEAD + """params: {w: 1.25}
input: [3, 4, 4]
blocks:
  b:
    params: {c: null}
    layers: [{conv2d: {filters: $c, kernel: 1}}]
layers:
  - b: {c: "$w * 10"}
"""
    got = _errors(text)
    assert len(got) == 1 and "'filters' takes a whole number, but '$w * 10' is 12.5" in got[0]
    assert got[0].startswith("net.yaml:10:12:")   # where the expression is written, not where $c is used


def test_cli_scale_set_and_exported_metadata(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(HEAD + "params: {c: 4, act: relu}\nscales:\n  wide: {c: 8}\ninput: [3, 4, 4]\n"
                    "layers:\n  - conv2d: {filters: \"$c * 2\", kernel: 1}\n  - $act\n", encoding="utf-8")
    assert main(["check", str(spec), "--scale", "wide", "--set", "act=relu6", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["scale"] == "wide" and doc["parameters"] == {"c": 8, "act": "relu6"}
    assert doc["output_shape"] == [16, 4, 4] and doc["layers"][0]["args"]["filters"] == 16
    assert doc["layers"][1]["op"] == "relu6"
    assert main(["check", str(spec), "--set", "c=3"]) == 0
    out = capsys.readouterr().out
    assert "Parameters: c=3, act=relu" in out and "[6, 4, 4]" in out
    assert main(["check", str(spec), "--scale", "narrow"]) == 2
    assert "no such scale (its scales: wide)" in capsys.readouterr().err
    assert main(["check", str(spec), "--set", "size=3"]) == 2
    assert "its params: c, act" in capsys.readouterr().err
    assert main(["check", str(spec), "--set", "c"]) == 2
    assert main(["draw", str(spec), "--scale", "nope", "-o", str(tmp_path / "d.dot")]) == 2
    assert main(["draw", str(spec), "--scale", "wide", "-o", str(tmp_path / "d.dot")]) == 0


@pytest.mark.slow
def test_build_writes_the_resolved_spec_and_the_scale(tmp_path, capsys):
    import onnx

    spec = tmp_path / "s.yaml"
    spec.write_text(HEAD + "params: {c: 4}\nscales:\n  wide: {c: 8}\ninput: [3, 4, 4]\n"
                    "layers:\n  - conv2d: {filters: \"$c * 2\", kernel: 1}\n  - global_avgpool2d\n", encoding="utf-8")
    out = tmp_path / "b"
    assert main(["build", str(spec), "--scale", "wide", "--set", "c=5", "-o", str(out), "--quiet"]) == 0
    model = onnx.load(str(out / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["cnnspec.scale"] == "wide"
    assert json.loads(meta["cnnspec.spec"])["params"] == {"c": 5}
    assert cnnspec.loads(meta["cnnspec.spec"]).graph.output_shape == (10,)
    assert main(["build", str(spec), "-o", str(tmp_path / "plain"), "--quiet"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "plain" / "model.onnx")).metadata_props}
    assert "cnnspec.scale" not in meta


def test_every_command_that_reads_a_spec_takes_scale_and_set():
    from cnnspec.cli import build_parser

    parser = build_parser()
    for command in ("check", "draw", "build", "train", "convert"):
        args = parser.parse_args([command, "x.yaml", "--scale", "s", "--set", "a=1", "--set", "b=x"]
                                 + {"draw": ["-o", "x.svg"], "convert": ["--weights", "w", "--to", "keras"]}.get(command, []))
        assert args.scale == "s" and args.set_params == ["a=1", "b=x"], command


def test_a_default_may_be_an_expression_over_the_parameters_before_it():
    text = HEAD + """params: {width: 1.4, stem: "make_divisible(32 * $width)"}
input: [3, 4, 4]
blocks:
  b:
    params: {c: null, hidden: "$c * 6", squeeze: "max(1, $c // 4)"}
    layers: [{conv2d: {filters: $hidden, kernel: 1}, name: e}, {conv2d: {filters: $squeeze, kernel: 1}, name: s}]
layers:
  - {conv2d: {filters: $stem, kernel: 1}, name: stem}
  - {b: {c: 8}, name: b1}
  - {b: {c: 8, squeeze: 5}, name: b2}
"""
    g = _check(text)
    assert g.node("stem").shape[0] == 48 and dict(g.parameters)["stem"] == 48
    assert (g.node("b1.e").shape[0], g.node("b1.s").shape[0], g.node("b2.s").shape[0]) == (48, 2, 5)
    assert _check(text, sets={"width": 0.5}).node("stem").shape[0] == 16     # derived after --set
    assert json.loads(_check(text).canonical_spec)["params"] == {"width": 1.4, "stem": 48}
    later = text.replace('stem: "make_divisible(32 * $width)"}', 'stem: "$late * 2", late: 3}')
    assert _errors(later) == ["net.yaml:3:28: error: params: 'stem: $late * 2': '$late' is not a parameter "
                              "(a parameter's value may use only the parameters before it)"]


@pytest.mark.slow
def test_train_takes_scale_and_set_and_a_resume_must_give_the_same(tmp_path, capsys):
    import onnx

    spec = tmp_path / "s.yaml"
    spec.write_text(HEAD + "params: {c: 4}\nscales:\n  wide: {c: 8}\ninput: [1, 8, 8]\n"
                    "layers:\n  - conv2d: {filters: \"$c\", kernel: 3, padding: same, activation: relu}\n"
                    "  - global_avgpool2d\n  - dense: 10\n", encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", str(spec), "--data", "digits", "--epochs", "1", "--scale", "wide", "--set", "c=6",
                 "-o", str(out), "--quiet"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert meta["cnnspec.scale"] == "wide" and json.loads(meta["cnnspec.spec"])["params"] == {"c": 6}
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 2
    assert "--scale/--set (scale wide set c=6 in the checkpoint, none now)" in capsys.readouterr().err


EVERY_TARGET = HEAD + """params: {e: 0.001, s: 0.2, c: 6, w: 0.75, res: 12}
scales:
  big: {c: 10, res: 14}
input: [3, $res, $res]
blocks:
  unit:
    params: {f: null, k: 3, stride: 1, cin: 0, e: 1.0e-5, s: 0.2}
    layers:
      - {conv2d: {filters: $f, kernel: $k, padding: "($k - 1) // 2", stride: $stride, bias: false}, name: conv}
      - {batchnorm: {eps: "$e / 10", momentum: "$s / 2"}, name: bn}
      - {add: null, in: [bn, input], when: "$stride == 1 and $cin == $f"}
layers:
  - {conv2d: {filters: "make_divisible($c * $w, 4)", kernel: "$c // 2 - 1 + ($c % 2)", padding: same}}
  - {unit: {f: "make_divisible($c * $w, 4)", cin: "make_divisible($c * $w, 4)", e: $e, s: $s}, name: u,
     repeat: "max(1, $c // 4)"}
  - {unit: {f: "$c", k: "3 if $c > 8 else 1", stride: "1 if $c < 8 else 2", e: "$e * 2"}, name: down}
  - {leaky_relu: "$s / 4"}
  - {dropout: "$s * 1.5"}
  - {avgpool2d: "$c // $c + 1"}
  - flatten
  - {dense: "$c * 2", name: out, expect: ["$c * 2"]}
"""


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.keras
@pytest.mark.xdist_group("keras")  # as test_parity's: Keras' tests share one worker
@pytest.mark.parametrize("scale", [None, "big"])
def test_a_spec_with_expressions_computes_the_same_in_every_target(scale, tmp_path):
    from test_parity import check_parity

    g = _check(EVERY_TARGET, scale=scale)
    assert g.output_shape == ((20,) if scale else (12,))
    check_parity(g, tmp_path)


def test_a_block_does_not_see_the_specs_params_and_is_told_how_to_pass_them():
    text = HEAD + """params: {c: 4}
input: [3, 4, 4]
blocks:
  b:
    layers: [{conv2d: {filters: "$c * 2", kernel: 1}}]
layers: [b]
"""
    assert "the spec's params are not seen inside blocks: give block 'b' a parameter and pass $c in the call" \
        in _errors(text)[0]


# -- against Python's own arithmetic ---------------------------------------------------------------
def _trees():
    """Random expressions of the grammar's arithmetic and logic, as text, with $a and $b among the leaves."""
    leaves = st.one_of(st.integers(0, 50).map(str), st.sampled_from(["2.5", "0.5", "1.0", "$a", "$b"]))

    def extend(inner):
        binary = st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})")
        unary = inner.map(lambda x: f"(-{x})")
        call = st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})")
        one = st.tuples(st.sampled_from(["abs", "round", "floor", "ceil", "int"]), inner).map(
            lambda t: f"{t[0]}({t[1]})")
        cond = st.tuples(inner, st.sampled_from(["<", "<=", "==", "!=", ">", ">="]), inner, inner, inner).map(
            lambda t: f"({t[3]} if {t[0]} {t[1]} {t[2]} else {t[4]})")
        return st.one_of(binary, unary, call, one, cond)

    return st.recursive(leaves, extend, max_leaves=8)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@settings(max_examples=400, deadline=None)
@given(_trees(), st.integers(-20, 20), st.floats(-20, 20, allow_nan=False))
def test_values_are_pythons_wherever_both_give_one(text, a, b):
    """Python's own evaluation of the same text (generated here, never user input) is the reference: where
    it gives a finite number within the limits, the evaluator gives the same number, and otherwise an
    ExpressionError, never another exception."""
    source = text.replace("$a", "(a)").replace("$b", "(b)")
    scope = {"a": a, "b": b, "min": min, "max": max, "abs": abs, "round": round, "floor": math.floor,
             "ceil": math.ceil, "int": int, "__builtins__": {}}
    try:
        with _no_huge_powers(source):
            expected = eval(source, scope)  # noqa: S307 - the test's reference, on text the test made
        ok = isinstance(expected, (int, float)) and not isinstance(expected, complex) and \
            math.isfinite(expected) and abs(expected) <= 1e15
    except (ArithmeticError, ValueError, TypeError, _TooBig):
        ok = False
    try:
        got = evaluate(text, {"a": a, "b": b})
    except ExpressionError:
        return  # the evaluator may refuse more (sizes of intermediate results, a bool in arithmetic)
    assert ok, f"{text} gave {got!r} where Python fails or goes past the limits"
    assert got == expected or math.isclose(got, expected, rel_tol=1e-12), (text, got, expected)


class _TooBig(Exception):
    pass


class _no_huge_powers:
    """Refuse texts whose powers could take Python long to compute (the reference must end quickly too)."""

    def __init__(self, source):
        if source.count("**") > 2:
            raise _TooBig

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
