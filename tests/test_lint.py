"""Warnings for specs that check but probably say something their author did not mean: table-driven,
located like errors, never changing the exit code."""
import json

import pytest

import cnnspec
from cnnspec.cli import main
from cnnspec.graph.lint import lint

HEAD = "cnnspec: 1\nname: t\ninput: [3, 8, 8]\nlayers:\n"

CASES = [
    # (id, layers after HEAD, expected warnings as "line:col: message" (empty: none))
    ("softmax-one-value", "  - flatten\n  - dense: 1\n  - softmax\n",
     ["7:5: softmax_1: softmax over a single value always gives 1; for one yes/no output use sigmoid, "
      "for k classes give the layer before it k outputs"]),
    ("fused-softmax-one-value", "  - flatten\n  - dense: {units: 1, activation: softmax}\n",
     ["6:5: dense_1: softmax over a single value always gives 1; for one yes/no output use sigmoid, "
      "for k classes give the layer before it k outputs"]),
    ("softmax-one-channel", "  - conv2d: {filters: 1, kernel: 1, activation: softmax}\n",
     ["5:5: conv2d_1: softmax over a single channel always gives 1; for one yes/no output use sigmoid, "
      "for k classes give the layer before it k outputs"]),
    ("softmax-ten", "  - flatten\n  - dense: 10\n  - softmax\n", []),
    ("sigmoid-one", "  - flatten\n  - dense: 1\n  - sigmoid\n", []),
    ("conv-bias-then-bn", "  - {conv2d: {filters: 8, kernel: 3}, name: c}\n  - {batchnorm: null, name: bn}\n",
     ["5:5: c: its bias is cancelled by the batchnorm after it (bn subtracts the mean); 'bias: false' saves "
      "8 parameters"]),
    ("dense-bias-then-bn", "  - flatten\n  - dense: 16\n  - batchnorm\n",
     ["6:5: dense_1: its bias is cancelled by the batchnorm after it (batchnorm_1 subtracts the mean); "
      "'bias: false' saves 16 parameters"]),
    ("conv-no-bias-then-bn", "  - conv2d: {filters: 8, kernel: 3, bias: false}\n  - batchnorm\n", []),
    ("conv-activation-then-bn", "  - conv2d: {filters: 8, kernel: 3, activation: relu}\n  - batchnorm\n", []),
    ("conv-read-by-bn-and-more", "  - {conv2d: {filters: 3, kernel: 1}, name: c}\n  - batchnorm\n"
                                 "  - {add: null, in: [c, batchnorm_1]}\n", []),
]


@pytest.mark.parametrize("case_id, layers, expected", CASES, ids=[c[0] for c in CASES])
def test_warnings(case_id, layers, expected):
    graph = cnnspec.loads(HEAD + layers, file="t.yaml").graph
    assert [w.render() for w in lint(graph)] == [f"t.yaml:{e.split(':', 2)[0]}:{e.split(':', 2)[1]}: warning:"
                                                 f"{e.split(':', 2)[2]}" for e in expected]


def test_the_zoo_has_no_warnings():
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml")):
        assert lint(cnnspec.load(path).graph) == [], path.name


def test_check_prints_warnings_on_stderr_and_still_exits_0(tmp_path, capsys):
    spec = tmp_path / "w.yaml"
    spec.write_text(HEAD + "  - flatten\n  - dense: 1\n  - softmax\n")
    assert main(["check", str(spec)]) == 0
    captured = capsys.readouterr()
    assert "softmax_1" in captured.out  # the table
    assert captured.err.strip().startswith(f"{spec}:7:5: warning: softmax_1: softmax over a single value")
    assert main(["check", str(spec), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is True and doc["errors"] == []
    assert doc["warnings"] == [{"line": 7, "column": 5, "message": doc["warnings"][0]["message"]}]
    assert doc["warnings"][0]["message"].startswith("softmax_1: softmax over a single value")
